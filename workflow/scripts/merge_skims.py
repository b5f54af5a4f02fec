"""Snakemake adapter of rule merge: calls l1refit.stages.skim.merge (see l1refit.stages.runner)."""

from l1refit.stages.runner import run
from l1refit.stages.skim import merge

run(merge, snakemake)  # noqa: F821
