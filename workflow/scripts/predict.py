"""Snakemake adapter: out-of-fold predictions of one fold model -> results/predictions/{model}/fold{k}.parquet."""

import sys

from l1refit.stages import run_prediction

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

run_prediction(
    snakemake.input.model,  # noqa: F821
    snakemake.input.skim,  # noqa: F821
    snakemake.params.training,  # noqa: F821
    snakemake.params.fold,  # noqa: F821
    snakemake.output[0],  # noqa: F821
)
