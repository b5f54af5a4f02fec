"""Snakemake adapter of rule dimuon: calls l1refit.stages.plots.dimuon (see l1refit.stages.runner)."""

from l1refit.stages.plots import dimuon
from l1refit.stages.runner import run

run(dimuon, snakemake)  # noqa: F821
