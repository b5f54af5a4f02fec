"""The optimised inference graph: equivalent to the exported one (edges included), smaller, same FLOPs."""

import numpy as np
import onnx

from l1refit.deploy.flops import mlp_flops
from l1refit.deploy.hw_inputs import edge_rows, random_hw
from l1refit.deploy.metadata import graph_inputs, read_metadata
from l1refit.deploy.onnx_export import export_onnx
from l1refit.deploy.optimize import optimize_onnx
from l1refit.deploy.runtime import run_onnx
from l1refit.scales import wrap_phi

PI32 = float(np.float32(np.pi))  # the graph's π constant (float32 rounds π up)


def _outputs(path, x):
    return run_onnx(path, x).astype(np.float64)


def test_optimized_graph_is_equivalent_and_smaller(exported):
    tmp, path, skim, _ = exported
    opt = optimize_onnx(path, tmp / "toy_opt.onnx")
    x = np.concatenate([edge_rows(graph_inputs(path)), random_hw(5000, seed=3)])
    want, got = _outputs(path, x), _outputs(opt, x)
    assert np.abs(wrap_phi(got[:, 0] - want[:, 0])).max() < 1e-5
    np.testing.assert_allclose(got[:, 1:], want[:, 1:], atol=1e-4)
    assert np.all((got[:, 0] > -PI32) & (got[:, 0] <= PI32))
    assert len(onnx.load(opt).graph.node) < len(onnx.load(path).graph.node) / 3
    assert mlp_flops(opt) == 4544
    assert read_metadata(opt)["optimized"].startswith("l1refit.bench.optimize_onnx")  # as written since it exists


def test_optimized_graph_of_a_relative_pt_model(tmp_path, toy_skim, fit_toy):
    model, _ = fit_toy(toy_skim(1500, seed=2), epochs=1, pt_target="relative")
    path = tmp_path / "rel.onnx"
    export_onnx(model, path, "rel")
    opt = optimize_onnx(path, tmp_path / "rel_opt.onnx", check_rows=2000)  # raises if not equivalent
    x = random_hw(1000, seed=4)
    np.testing.assert_allclose(_outputs(opt, x)[:, 1:], _outputs(path, x)[:, 1:], rtol=1e-5, atol=1e-4)
