"""Snakemake adapter of rule fpga_precision: calls l1refit.stages.fpga.fpga_precision (see l1refit.stages.runner)."""

from l1refit.stages.fpga import fpga_precision
from l1refit.stages.runner import run

run(fpga_precision, snakemake)  # noqa: F821
