"""Snakemake adapter: out-of-fold predictions of the analysis model -> results/plots/fig2_residuals.{png,pdf}."""

import sys

from l1refit.analysis import run_fig2

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

run_fig2(
    snakemake.input,  # noqa: F821
    model=snakemake.params.model,  # noqa: F821
    metrics_config=snakemake.params.metrics,  # noqa: F821
    dataset=snakemake.params.dataset,  # noqa: F821
    simulation=snakemake.params.simulation,  # noqa: F821
    stem=snakemake.output.png.removesuffix(".png"),  # noqa: F821
)
