"""Snakemake adapter: the final model applied to a whole skim -> results/predictions/{model}/final/{dataset}.parquet."""

import sys

from l1refit.stages import run_dataset_prediction

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

run_dataset_prediction(snakemake.input.model, snakemake.input.skim, snakemake.output[0])  # noqa: F821
