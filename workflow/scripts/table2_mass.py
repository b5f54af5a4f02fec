"""Snakemake adapter of rule table2_mass: calls l1refit.stages.mass.table2_mass (see l1refit.stages.runner)."""

from l1refit.stages.mass import table2_mass
from l1refit.stages.runner import run

run(table2_mass, snakemake)  # noqa: F821
