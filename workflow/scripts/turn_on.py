"""Snakemake adapter of rule turn_on: calls l1refit.stages.plots.turn_on (see l1refit.stages.runner)."""

from l1refit.stages.plots import turn_on
from l1refit.stages.runner import run

run(turn_on, snakemake)  # noqa: F821
