"""Snakemake adapter of rule baseline: calls l1refit.stages.evaluate.baseline (see l1refit.stages.runner)."""

from l1refit.stages.evaluate import baseline
from l1refit.stages.runner import run

run(baseline, snakemake)  # noqa: F821
