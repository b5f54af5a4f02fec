"""Snakemake adapter of rule train: calls l1refit.stages.train.train (see l1refit.stages.runner)."""

from l1refit.stages.runner import run
from l1refit.stages.train import train

run(train, snakemake)  # noqa: F821
