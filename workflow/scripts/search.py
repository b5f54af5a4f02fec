"""Snakemake adapter of rule search: calls l1refit.stages.evaluate.search (see l1refit.stages.runner)."""

from l1refit.stages.evaluate import search
from l1refit.stages.runner import run

run(search, snakemake)  # noqa: F821
