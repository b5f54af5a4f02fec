"""Snakemake adapter of rule skim: calls l1refit.stages.skim.skim (see l1refit.stages.runner)."""

from l1refit.stages.runner import run
from l1refit.stages.skim import skim

run(skim, snakemake)  # noqa: F821
