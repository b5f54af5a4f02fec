"""Snakemake adapter of rule mass_limit: calls l1refit.stages.mass.mass_limit (see l1refit.stages.runner)."""

from l1refit.stages.mass import mass_limit
from l1refit.stages.runner import run

run(mass_limit, snakemake)  # noqa: F821
