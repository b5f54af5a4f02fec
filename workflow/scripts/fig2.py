"""Snakemake adapter of rule fig2: calls l1refit.stages.plots.fig2 (see l1refit.stages.runner)."""

from l1refit.stages.plots import fig2
from l1refit.stages.runner import run

run(fig2, snakemake)  # noqa: F821
