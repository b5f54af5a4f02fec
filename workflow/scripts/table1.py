"""Snakemake adapter: the model definitions of config -> results/tables/table1.csv (+ .md)."""

import sys

from l1refit.evaluate import write_table1

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

write_table1(snakemake.params.models, snakemake.output.csv)  # noqa: F821
