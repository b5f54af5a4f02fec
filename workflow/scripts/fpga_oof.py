"""Snakemake adapter of rule fpga_oof: calls l1refit.stages.fpga.fpga_fold_predict (see l1refit.stages.runner)."""

from l1refit.stages.fpga import fpga_fold_predict
from l1refit.stages.runner import run

run(fpga_fold_predict, snakemake)  # noqa: F821
