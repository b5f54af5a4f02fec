"""Snakemake adapter of rule fakeid_mass: calls l1refit.stages.fakeid.mass (see l1refit.stages.runner)."""

from l1refit.stages.fakeid import mass
from l1refit.stages.runner import run

run(mass, snakemake)  # noqa: F821
