"""ONNX export of a trained model as a deployable graph: raw hardware integers in, corrected φ, η, pT out.

The graph carries the input normalisation, the MLP (batch normalisation folded), the de-normalisation, the L1
physical values from the integers (CMSSW scales) and the φ wrap, so any ONNX runtime can use it without this
package; its metadata name the model, its inputs and outputs with units and its training configuration
(docs/deploy.md).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from l1refit import __version__, scales
from l1refit.deploy.metadata import add_metadata
from l1refit.deploy.runtime import make_session
from l1refit.formats.output import atomic_path
from l1refit.ml.checkpoint import TrainedModel

log = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = "hw"
OUTPUT_NAME = "corrected"
OUTPUT_COLUMNS = ("phi", "eta", "pt")
OUTPUT_UNITS = {"phi": "rad, wrapped into (-pi, pi]", "eta": "", "pt": "GeV"}
REQUIRED_INPUTS = ("hwPhiAtVtx", "hwEtaAtVtx", "hwPt")


def _wrap(phi: torch.Tensor) -> torch.Tensor:
    """Wrap into (−π, π] with Floor only (opset-portable; no Mod/Atan2)."""
    two_pi = 2.0 * math.pi
    shifted = math.pi - phi
    return math.pi - (shifted - two_pi * torch.floor(shifted / two_pi))


class Deployable(nn.Module):
    """The trained MLP between its scalers, with the L1 physics around it (see the module docstring)."""

    def __init__(self, model: TrainedModel) -> None:
        super().__init__()
        missing = [name for name in REQUIRED_INPUTS if name not in model.inputs]
        if missing:
            raise ValueError(
                f"cannot export a model without input(s) {', '.join(missing)}: the graph computes the L1 values it "
                f"corrects from them (model inputs: {', '.join(model.inputs)})"
            )
        self.mlp = copy.deepcopy(model.module).float().eval()
        f32 = torch.float32
        self.register_buffer("x_min", torch.as_tensor(model.x_scaler.data_min, dtype=f32))
        self.register_buffer("x_scale", torch.as_tensor(model.x_scaler.scale, dtype=f32))
        self.register_buffer("y_min", torch.as_tensor(model.y_scaler.data_min, dtype=f32))
        self.register_buffer("y_scale", torch.as_tensor(model.y_scaler.scale, dtype=f32))
        self.i_phi, self.i_eta, self.i_pt = (model.inputs.index(name) for name in REQUIRED_INPUTS)
        self.relative_pt = model.pt_target == "relative"

    def forward(self, hw: torch.Tensor) -> torch.Tensor:
        hw = hw.to(torch.float32)
        diff = self.mlp((hw - self.x_min) / self.x_scale) * self.y_scale + self.y_min
        l1_phi = _wrap(hw[:, self.i_phi] * scales.PHI_LSB_CMSSW)
        l1_eta = hw[:, self.i_eta] * scales.ETA_LSB
        l1_pt = (hw[:, self.i_pt] - 1.0) * scales.PT_LSB
        pt = l1_pt * (1.0 - diff[:, 2]) if self.relative_pt else l1_pt - diff[:, 2]
        return torch.stack([_wrap(l1_phi - diff[:, 0]), l1_eta - diff[:, 1], pt], dim=1)


def config_hash(training: dict) -> str:
    """SHA-256 of the training configuration as canonical JSON (sorted keys): equal configs, equal hashes."""
    return hashlib.sha256(json.dumps(training, sort_keys=True, default=str).encode()).hexdigest()


def metadata(model: TrainedModel, model_id: str) -> dict[str, str]:
    training = model.metadata.get("training", {})
    return {
        "model_id": model_id,
        "producer": f"l1refit {__version__}",
        "inputs": json.dumps(list(model.inputs)),
        "input_name": INPUT_NAME,
        "input_units": "hardware integers (as float32), CMSSW uGMT scales",
        "outputs": json.dumps(list(OUTPUT_COLUMNS)),
        "output_name": OUTPUT_NAME,
        "output_units": json.dumps(OUTPUT_UNITS),
        "pt_target": model.pt_target,
        "spec": json.dumps(model.spec.to_dict()),
        "training_config": json.dumps(training, sort_keys=True, default=str),
        "training_config_sha256": config_hash(training),
        "opset": str(OPSET),
    }


def export_onnx(model: TrainedModel, path: str | Path, model_id: str = "") -> onnx.ModelProto:
    """Write ``model`` as a deployable ONNX graph (atomically) and return it; see the module docstring."""
    module = Deployable(model).eval()
    example = torch.as_tensor(np.array([[100, 10, 20, 1]] * 4, dtype=np.float32)[:, : len(model.inputs)])
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"hw": {0: torch.export.Dim("batch")}},
            opset_version=OPSET,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    proto = program.model_proto
    add_metadata(proto, metadata(model, model_id or str(model.metadata.get("model", ""))))
    proto.doc_string = "l1refit: raw uGMT hardware integers in, corrected phi (rad), eta, pT (GeV) out"
    onnx.checker.check_model(proto, full_check=True)
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return proto


def parity(model: TrainedModel, onnx_path: str | Path, rows) -> dict[str, float]:
    """Max |ONNX − PyTorch| per output on skim ``rows`` (a DataFrame with the model's inputs and L1 columns)."""
    session = make_session(onnx_path, threads=None)  # onnxruntime's default thread pools
    out = session.run(None, {INPUT_NAME: rows[list(model.inputs)].to_numpy(np.float32)})[0]
    ref = model.predict(rows)
    return {name: float(np.max(np.abs(out[:, i] - ref[f"pred_{name}"]), initial=0.0))
            for i, name in enumerate(OUTPUT_COLUMNS)}  # fmt: skip


def run_export(model_path, onnx_path, *, model_id: str, skim_path, parity_rows: int = 100_000,
               tolerance: float = 1e-5) -> dict[str, float]:  # fmt: skip
    """The export job: write the graph, then check it against PyTorch on real skim rows (fails beyond tolerance)."""
    import pyarrow.parquet as pq

    model = TrainedModel.load(model_path)
    export_onnx(model, onnx_path, model_id)
    batch = next(pq.ParquetFile(skim_path).iter_batches(batch_size=parity_rows))
    diff = parity(model, onnx_path, batch.to_pandas())
    log.info(f"{onnx_path}: ONNX vs PyTorch on {batch.num_rows} skim rows, max |diff| {diff}")
    if max(diff.values()) > tolerance:
        Path(onnx_path).unlink()
        raise RuntimeError(f"{onnx_path}: ONNX and PyTorch differ by {diff} (> {tolerance}); graph removed")
    return diff


# Defined after everything above on purpose: torch.onnx records source line numbers in the graph's node metadata, so
# code added above ``Deployable.forward`` would change the exported bytes.
def fold_scalers(first: tuple, last: tuple, x_min, x_scale, y_min, y_scale) -> tuple:
    """Dense layers with the min-max scalers folded in, float64: ``(w1, b1, w_last, b_last)``.

    ``first`` and ``last`` are ``(weight (out, in), bias)`` of the first and last dense layers; the input
    normalisation ``(x − x_min) / x_scale`` goes into the first (W/scale, b − W·min/scale) and the de-normalisation
    ``y·y_scale + y_min`` into the last — the arithmetic of :func:`l1refit.deploy.optimize.optimize_onnx`.
    """
    f64 = np.float64
    x_min, x_scale = np.asarray(x_min, f64), np.asarray(x_scale, f64)
    y_min, y_scale = np.asarray(y_min, f64), np.asarray(y_scale, f64)
    w1 = np.asarray(first[0], f64) / x_scale[None, :]
    b1 = np.asarray(first[1], f64) - w1 @ x_min
    w_last = np.asarray(last[0], f64) * y_scale[:, None]
    b_last = np.asarray(last[1], f64) * y_scale + y_min
    return w1, b1, w_last, b_last
