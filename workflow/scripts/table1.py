"""Snakemake adapter of rule table1: calls l1refit.stages.evaluate.table1 (see l1refit.stages.runner)."""

from l1refit.stages.evaluate import table1
from l1refit.stages.runner import run

run(table1, snakemake)  # noqa: F821
