"""Snakemake adapter: out-of-fold predictions of every model and baseline -> results/tables/table2.{csv,md,tex}."""

import sys

from l1refit.stages import run_table2

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

run_table2(
    snakemake.input.models,  # noqa: F821
    snakemake.input.baselines,  # noqa: F821
    models=snakemake.params.models,  # noqa: F821
    baselines=snakemake.params.baselines,  # noqa: F821
    folds=snakemake.params.folds,  # noqa: F821
    metrics_config=snakemake.params.metrics,  # noqa: F821
    csv_path=snakemake.output.csv,  # noqa: F821
    md_path=snakemake.output.md,  # noqa: F821
    tex_path=snakemake.output.tex,  # noqa: F821
)
