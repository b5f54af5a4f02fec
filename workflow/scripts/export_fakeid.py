"""Snakemake adapter of rule export_fakeid: calls l1refit.stages.fakeid.export (see l1refit.stages.runner)."""

from l1refit.stages.fakeid import export
from l1refit.stages.runner import run

run(export, snakemake)  # noqa: F821
