"""Snakemake adapter: out-of-fold predictions of the analysis model -> turn-on curves (plot and table)."""

import sys

from l1refit.analysis import run_turn_on

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

plots = snakemake.params.plots  # noqa: F821
run_turn_on(
    snakemake.input,  # noqa: F821
    model=snakemake.params.model,  # noqa: F821
    thresholds=plots["turn_on_thresholds"],
    pt_range=plots["turn_on_pt_range"],
    bins=plots["turn_on_bins"],
    dataset=snakemake.params.dataset,  # noqa: F821
    simulation=snakemake.params.simulation,  # noqa: F821
    stem=snakemake.output.png.removesuffix(".png"),  # noqa: F821
    table_path=snakemake.output.table,  # noqa: F821
)
