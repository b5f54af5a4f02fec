"""Snakemake adapter of rule fpga_firmware: calls l1refit.stages.fpga.fpga_firmware (see l1refit.stages.runner)."""

from l1refit.stages.fpga import fpga_firmware
from l1refit.stages.runner import run

run(fpga_firmware, snakemake)  # noqa: F821
