"""Snakemake adapter of rule fpga_qat: calls l1refit.stages.fpga.fpga_qat (see l1refit.stages.runner)."""

from l1refit.stages.fpga import fpga_qat
from l1refit.stages.runner import run

run(fpga_qat, snakemake)  # noqa: F821
