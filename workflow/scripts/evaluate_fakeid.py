"""Snakemake adapter of rule fakeid: calls l1refit.stages.fakeid.evaluate (see l1refit.stages.runner)."""

from l1refit.stages.fakeid import evaluate
from l1refit.stages.runner import run

run(evaluate, snakemake)  # noqa: F821
