"""Snakemake adapter of rule propagation_accuracy: calls l1refit.stages.data.propagation_accuracy."""

from l1refit.stages.data import propagation_accuracy
from l1refit.stages.runner import run

run(propagation_accuracy, snakemake)  # noqa: F821
