"""The int8 model: static QDQ quantisation of the MLP's dense layers, and what it costs in the Table-2 metrics.

Only the Gemm nodes are quantised (int8 per-channel weights, uint8 activations at their inputs), so the integer
inputs, the normalisation and the φ wrapping stay exact float (docs/deploy.md).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pandas as pd

from l1refit import scales
from l1refit.analysis.metrics import METRIC_COLUMNS, Windows, metrics, residuals
from l1refit.deploy.hw_inputs import hw_rows
from l1refit.deploy.metadata import add_metadata, graph_inputs, metadata_of, read_metadata
from l1refit.deploy.optimize import PHYSICS_PREFIX
from l1refit.deploy.runtime import run_onnx
from l1refit.formats.output import atomic_path

INT8 = "int8 (static QDQ)"


class _Reader:
    """onnxruntime ``CalibrationDataReader``: equal-sized batches of hardware rows (the histogram calibrators
    fail on a short last batch)."""

    def __init__(self, name: str, x: np.ndarray, batch_size: int) -> None:
        batch_size = min(batch_size, len(x))
        self._batches = iter([{name: x[i : i + batch_size]} for i in range(0, len(x) - batch_size + 1, batch_size)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # part of the reader protocol; a calibration reads once
        pass


def quantize_int8(onnx_path: str | Path, out_path: str | Path, calibration_rows, *, per_channel: bool = True,
                  batch_size: int = 1000) -> dict:  # fmt: skip
    """Static QDQ int8 version of an exported graph, calibrated (min-max) on ``calibration_rows``; returns its notes.

    ``calibration_rows``: a skim DataFrame (the graph's input columns are taken) or an (N, n_inputs) array.
    Only the MLP's Gemm nodes are quantised: int8 weights (per output channel when ``per_channel``) and uint8
    activations at their inputs; their outputs stay float (``OpTypesToExcludeOutputQuantization``), as an FPGA
    keeps wide accumulators, so the requantisation happens once per layer, after the activation. The normalisation,
    the L1 scales and the φ wrapping stay float and exact. If static quantisation fails, dynamic quantisation of the
    same nodes is used instead and the notes say why. The notes are also in the model's metadata (``quantization``).
    The input must be the exported graph: its normalisation gives every input column its own [0, 1] range before
    the first quantiser (an :func:`~l1refit.deploy.optimize.optimize_onnx` graph is refused).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    proto = onnx.load_model(str(onnx_path))
    if "optimized" in metadata_of(proto):
        raise ValueError(f"{onnx_path}: quantise the exported graph, not optimize_onnx's: with the normalisation "
                         "folded away one uint8 scale would span all raw inputs (φ 0-575 and charge ±1 alike), and "
                         "the physics would read the quantised integers")  # fmt: skip
    inputs = graph_inputs(onnx_path)
    x = hw_rows(calibration_rows, inputs)
    gemms = [n.name for n in proto.graph.node
             if n.op_type in ("Gemm", "MatMul") and not n.name.startswith(PHYSICS_PREFIX)]  # fmt: skip
    notes = {"nodes": gemms, "calibration_rows": len(x), "per_channel": per_channel, "weights": "int8",
             "activations": "uint8 at Gemm inputs; Gemm outputs float"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="l1refit-int8-") as tmp:
        raw = Path(tmp) / "int8.onnx"
        try:
            quantize_static(
                str(onnx_path), str(raw), _Reader(proto.graph.input[0].name, x, batch_size),
                quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                per_channel=per_channel, nodes_to_quantize=gemms, op_types_to_quantize=["Gemm", "MatMul"],
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"]},
            )  # fmt: skip
            notes["method"] = "static QDQ (min-max calibration)"
        except Exception as err:  # any calibration failure falls back to dynamic quantisation, and says so
            quantize_dynamic(str(onnx_path), str(raw), weight_type=QuantType.QInt8, per_channel=per_channel,
                             nodes_to_quantize=gemms, op_types_to_quantize=["Gemm", "MatMul"])  # fmt: skip
            notes["method"] = f"dynamic (static failed: {type(err).__name__}: {err})"
            notes["activations"] = "uint8, scale computed per call"
        quantized = onnx.load_model(str(raw))
    present = metadata_of(quantized)
    copied = {key: value for key, value in metadata_of(proto).items() if key not in present}
    add_metadata(quantized, copied | {"quantization": json.dumps(notes)})
    with atomic_path(out_path) as tmp:
        onnx.save_model(quantized, str(tmp))
    return notes


def int8_label(path: str | Path) -> str:
    """The precision label of a :func:`quantize_int8` graph: static QDQ, or dynamic where static failed."""
    method = json.loads(read_metadata(path).get("quantization", "{}")).get("method", "")
    return "int8 (dynamic)" if method.startswith("dynamic") else INT8


def precision_metrics(float_onnx: str | Path, int8_onnx: str | Path, skim_df: pd.DataFrame, *,
                      n_rows: int | None = 100_000, windows: Windows | None = None) -> pd.DataFrame:  # fmt: skip
    """Table-2 metrics of GMT, the float graph and the int8 graph on the first ``n_rows`` skim rows (all if None).

    Extra columns compare each model with the float graph: median and 99th-percentile |Δφ| (rad), |Δη|, and
    |ΔpT|/pT of the difference int8 − float.
    """
    df = skim_df.iloc[:n_rows] if n_rows else skim_df
    if df.empty:
        raise ValueError("precision_metrics: no skim rows")
    x = hw_rows(df, graph_inputs(float_onnx))
    reco = (df["reco_phi"].to_numpy(), df["reco_eta"].to_numpy(), df["reco_pt"].to_numpy())
    outputs = {"fp32": run_onnx(float_onnx, x).astype(np.float64),
               int8_label(int8_onnx): run_onnx(int8_onnx, x).astype(np.float64)}  # fmt: skip
    rows = [{"model": "GMT", "precision": "hardware scales", "n_rows": len(df),
             **metrics(residuals(df["l1_phi"], df["l1_eta"], df["l1_pt"], *reco), windows)}]  # fmt: skip
    reference = outputs["fp32"]
    for precision, out in outputs.items():
        d_phi = np.abs(scales.wrap_phi(out[:, 0] - reference[:, 0]))
        d_eta = np.abs(out[:, 1] - reference[:, 1])
        d_pt = np.abs(out[:, 2] - reference[:, 2]) / np.maximum(np.abs(reference[:, 2]), 1e-9)
        rows.append({
            "model": "NN", "precision": precision, "n_rows": len(df),
            **metrics(residuals(out[:, 0], out[:, 1], out[:, 2], *reco), windows),
            "dphi_vs_fp32_median": float(np.median(d_phi)), "dphi_vs_fp32_p99": float(np.quantile(d_phi, 0.99)),
            "deta_vs_fp32_median": float(np.median(d_eta)), "deta_vs_fp32_p99": float(np.quantile(d_eta, 0.99)),
            "dpt_rel_vs_fp32_median": float(np.median(d_pt)), "dpt_rel_vs_fp32_p99": float(np.quantile(d_pt, 0.99)),
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    return frame[["model", "precision", "n_rows", *METRIC_COLUMNS, *[c for c in frame if c.endswith(("_median",
                  "_p99"))]]]  # fmt: skip
