"""Snakemake adapter of rule predict_dataset: calls l1refit.stages.plots.predict_dataset (see l1refit.stages.runner)."""

from l1refit.stages.plots import predict_dataset
from l1refit.stages.runner import run

run(predict_dataset, snakemake)  # noqa: F821
