"""Snakemake adapter of rule train_reweighted: calls l1refit.stages.mass.train_reweighted (l1refit.stages.runner)."""

from l1refit.stages.mass import train_reweighted
from l1refit.stages.runner import run

run(train_reweighted, snakemake)  # noqa: F821
