"""Snakemake adapter of rule export_onnx: calls l1refit.stages.export.export_onnx (see l1refit.stages.runner)."""

from l1refit.stages.export import export_onnx
from l1refit.stages.runner import run

run(export_onnx, snakemake)  # noqa: F821
