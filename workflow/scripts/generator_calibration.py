"""Snakemake adapter of rule generator_calibration: calls l1refit.stages.data.generator_calibration."""

from l1refit.stages.data import generator_calibration
from l1refit.stages.runner import run

run(generator_calibration, snakemake)  # noqa: F821
