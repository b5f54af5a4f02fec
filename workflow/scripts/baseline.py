"""Snakemake adapter: one baseline trained on the other folds, predicted on this one -> predictions parquet."""

import sys

from l1refit.stages import run_baseline

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

run_baseline(
    snakemake.wildcards.baseline,  # noqa: F821
    snakemake.input[0],  # noqa: F821
    snakemake.params.training,  # noqa: F821
    snakemake.params.fold,  # noqa: F821
    snakemake.output[0],  # noqa: F821
)
