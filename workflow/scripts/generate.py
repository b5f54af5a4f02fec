"""Snakemake adapter of rule generate: calls l1refit.stages.data.generate (see l1refit.stages.runner)."""

from l1refit.stages.data import generate
from l1refit.stages.runner import run

run(generate, snakemake)  # noqa: F821
