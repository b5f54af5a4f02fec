"""Snakemake adapter of rule fpga_fakeid: calls l1refit.stages.fpga.fpga_fakeid (see l1refit.stages.runner)."""

from l1refit.stages.fpga import fpga_fakeid
from l1refit.stages.runner import run

run(fpga_fakeid, snakemake)  # noqa: F821
