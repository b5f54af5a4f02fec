"""Snakemake adapter of rule export_combined: calls l1refit.stages.fakeid.combined (see l1refit.stages.runner)."""

from l1refit.stages.fakeid import combined
from l1refit.stages.runner import run

run(combined, snakemake)  # noqa: F821
