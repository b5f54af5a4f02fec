"""Snakemake adapter of rule fpga_predict: calls l1refit.stages.fpga.fpga_predict (see l1refit.stages.runner)."""

from l1refit.stages.fpga import fpga_predict
from l1refit.stages.runner import run

run(fpga_predict, snakemake)  # noqa: F821
