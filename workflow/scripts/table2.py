"""Snakemake adapter of rule table2: calls l1refit.stages.evaluate.table2 (see l1refit.stages.runner)."""

from l1refit.stages.evaluate import table2
from l1refit.stages.runner import run

run(table2, snakemake)  # noqa: F821
