"""Snakemake adapter of rule table3: calls l1refit.stages.benchmark.table3 (see l1refit.stages.runner)."""

from l1refit.stages.benchmark import table3
from l1refit.stages.runner import run

run(table3, snakemake)  # noqa: F821
