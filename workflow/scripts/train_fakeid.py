"""Snakemake adapter of rule train_fakeid: calls l1refit.stages.fakeid.train (see l1refit.stages.runner)."""

from l1refit.stages.fakeid import train
from l1refit.stages.runner import run

run(train, snakemake)  # noqa: F821
