"""Snakemake adapter: the per-file skims of a dataset -> results/skims/{dataset}.parquet and its cutflow table."""

import sys

from l1refit.skim import merge

# progress (stdout) and errors (stderr) both go to the rule's log, kept open for the whole script
sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

merge(
    snakemake.input.parts,  # noqa: F821
    snakemake.output.parquet,  # noqa: F821
    snakemake.input.cutflows,  # noqa: F821
    snakemake.output.cutflow,  # noqa: F821
)
