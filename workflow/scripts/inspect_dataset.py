"""Snakemake adapter of rule inspect_dataset: calls l1refit.stages.data.inspect_dataset (see l1refit.stages.runner)."""

from l1refit.stages.data import inspect_dataset
from l1refit.stages.runner import run

run(inspect_dataset, snakemake)  # noqa: F821
