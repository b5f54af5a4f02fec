"""Export stage (workflow/rules/export.smk): a final network as an ONNX graph, checked against PyTorch."""

from __future__ import annotations

from l1refit.deploy.onnx_export import run_export


def export_onnx(*, model: str, skim: str, model_id: str, onnx: str) -> None:
    """Write ``onnx`` (raw hardware integers in, corrected φ, η, pT out); fails if it differs from PyTorch."""
    run_export(model, onnx, model_id=model_id, skim_path=skim)
