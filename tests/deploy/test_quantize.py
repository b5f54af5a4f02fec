"""The int8 model: close to the float graph, φ still exactly wrapped, and its cost in the Table-2 metrics."""

import numpy as np
import onnx
import pytest

from l1refit.analysis.metrics import METRIC_COLUMNS
from l1refit.deploy.hw_inputs import edge_rows
from l1refit.deploy.metadata import graph_inputs
from l1refit.deploy.optimize import optimize_onnx
from l1refit.deploy.quantize import INT8, precision_metrics, quantize_int8
from l1refit.deploy.runtime import run_onnx
from l1refit.scales import wrap_phi

PI32 = float(np.float32(np.pi))  # the graph's π constant (float32 rounds π up)


def _outputs(path, x):
    return run_onnx(path, x).astype(np.float64)


def test_int8_model_runs_close_to_float_and_keeps_phi_exactly_wrapped(exported, int8):
    _, path, skim, _ = exported
    int8_path, notes = int8
    assert notes["method"].startswith("static QDQ") and len(notes["nodes"]) == 4
    proto = onnx.load(int8_path)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Floor"} <= ops
    quantized_inputs = {n.input[0] for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    assert "hw" not in quantized_inputs  # the raw integers and the L1 physics stay float
    assert graph_inputs(int8_path) == graph_inputs(path)
    x = skim[list(graph_inputs(path))].to_numpy(np.float32)
    want, got = _outputs(path, x), _outputs(int8_path, x)
    d_pt = np.abs(got[:, 2] - want[:, 2])
    assert np.quantile(d_pt, 0.9) < 0.05 * np.abs(want[:, 2]).mean()
    assert np.quantile(np.abs(wrap_phi(got[:, 0] - want[:, 0])), 0.9) < 0.05
    assert np.all((got[:, 0] > -PI32) & (got[:, 0] <= PI32))
    edges = edge_rows(graph_inputs(path))  # φ 0 and 575: the wrap itself is exact float
    assert np.all(np.abs(_outputs(int8_path, edges)[:, 0]) <= PI32)


def test_int8_refuses_the_optimized_graph(exported, tmp_path):
    _, path, skim, _ = exported
    opt = optimize_onnx(path, tmp_path / "opt.onnx", check_rows=100)
    with pytest.raises(ValueError, match="quantise the exported graph"):
        quantize_int8(opt, tmp_path / "int8.onnx", skim.iloc[:100])


def test_precision_metrics_float_vs_int8(exported, int8):
    _, path, skim, _ = exported
    table = precision_metrics(path, int8[0], skim, n_rows=2000)
    assert table["precision"].tolist() == ["hardware scales", "fp32", INT8]
    assert set(METRIC_COLUMNS) <= set(table.columns) and (table["n_rows"] == 2000).all()
    fp32, q = table.iloc[1], table.iloc[2]
    assert fp32["dphi_vs_fp32_median"] == 0 and q["dpt_rel_vs_fp32_median"] > 0
    assert all(0 <= fp32[c] <= 100 for c in METRIC_COLUMNS if c.endswith(("_core", "_tail")))
