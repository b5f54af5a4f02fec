"""Snakemake adapter of rule predict: calls l1refit.stages.train.predict (see l1refit.stages.runner)."""

from l1refit.stages.runner import run
from l1refit.stages.train import predict

run(predict, snakemake)  # noqa: F821
