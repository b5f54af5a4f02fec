"""Snakemake adapter: inventory of one file dataset -> results/inspect/{dataset}.json."""

import sys

from l1refit.inspect import write_inventory

# progress (stdout) and errors (stderr) both go to the rule's log
# (kept open for the whole script, so an uncaught traceback lands in the log too)
sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

write_inventory(
    snakemake.params.paths,  # noqa: F821
    snakemake.params.format,  # noqa: F821
    snakemake.output[0],  # noqa: F821
    chunk_bytes=snakemake.params.chunk_bytes,  # noqa: F821
    l1_tree=snakemake.params.l1_tree,  # noqa: F821
)
