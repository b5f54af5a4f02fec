"""Adapter of rule fpga_rtl_simulation: calls l1refit.stages.fpga.fpga_rtl_simulation (see l1refit.stages.runner)."""

from l1refit.stages.fpga import fpga_rtl_simulation
from l1refit.stages.runner import run

run(fpga_rtl_simulation, snakemake)  # noqa: F821
