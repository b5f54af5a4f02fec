"""Snakemake adapter: one input file -> results/skims/{dataset}/{part}.parquet and its per-file cutflow."""

import sys

from l1refit.skim import skim_file

# progress (stdout) and errors (stderr) both go to the rule's log, kept open for the whole script
sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

params = snakemake.params  # noqa: F821
skim_file(
    params.source,
    params.format,
    params.selection,
    snakemake.output.parquet,  # noqa: F821
    snakemake.output.cutflow,  # noqa: F821
    step_size=params.step_size,
    chunk_bytes=params.chunk_bytes,
    l1_tree=params.l1_tree or None,
    part=params.part,
)
