"""An equivalent inference graph of an exported model: scalers folded into the dense layers, physics as Gemms.

In the exported graph the small broadcasting and column-gathering nodes cost as much as the MLP itself; this graph
runs about twice as fast and is checked against the exported one before it is written (docs/deploy.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from l1refit import scales
from l1refit.deploy.hw_inputs import edge_rows, random_hw
from l1refit.deploy.metadata import add_metadata, metadata_of
from l1refit.deploy.runtime import run_onnx
from l1refit.formats.output import atomic_path

PHYSICS_PREFIX = "physics_"  # names of the physics nodes below: neither MLP FLOPs nor quantised


def _arrays(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}


def _single_consumer(nodes: Sequence[onnx.NodeProto], tensor: str, op_type: str) -> onnx.NodeProto:
    users = [node for node in nodes if tensor in node.input]
    if len(users) != 1 or users[0].op_type != op_type:
        found = ", ".join(f"{n.op_type} {n.name}" for n in users) or "none"
        raise ValueError(f"optimize_onnx: expected one {op_type} reading {tensor!r}, found {found}")
    return users[0]


def _gemm_attributes(node: onnx.NodeProto) -> dict:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("transA", 0) or not attrs.get("transB", 0) or attrs.get("alpha", 1.0) != 1.0:
        raise ValueError(f"optimize_onnx: Gemm {node.name} is not Y = X·Wᵀ + b ({attrs})")
    return attrs


def _gemm(inputs: list[str], output: str, name: str) -> onnx.NodeProto:
    return helper.make_node("Gemm", inputs, [output], name=name, transB=1)


def optimize_onnx(onnx_path: str | Path, out_path: str | Path, *, check_rows: int = 20000) -> Path:
    """An equivalent inference graph of an exported model, checked against it; returns ``out_path``.

    * ``(hw − x_min) / x_scale`` is folded into the first Gemm (W/scale, b − W·min/scale) and
      ``y·y_scale + y_min`` into the last one, removing four broadcasting nodes on (N, 4) and (N, 3) tensors;
    * absolute-pT models: the L1 values and the corrections are one affine map, so
      ``y = Gemm(h, −W', C = Gemm(hw, S, c))`` gives (φ_raw − Δφ, η − Δη, pT − ΔpT) directly, and the φ wrap into
      (−π, π] is ``y + 2π·e₀·floor(0.5 − y₀/2π)`` (two Gemms and a Floor) — wrap(wrap(a) − b) = wrap(a − b);
    * relative-pT models keep the exported physics nodes (only the scalers are folded).

    The new graph is compared with the original on ``check_rows`` random inputs plus edge values (|Δφ| and |Δη| below
    10⁻⁴, |ΔpT| below 10⁻⁴·(1 + pT)); a difference is an error. The metadata is kept, with ``optimized`` added.
    """
    proto = onnx.load_model(str(onnx_path))
    graph, arrays = proto.graph, _arrays(proto)
    meta = metadata_of(proto)
    inputs = json.loads(meta["inputs"])
    hw_name, out_name = graph.input[0].name, graph.output[0].name
    nodes = list(graph.node)

    sub = next((n for n in nodes if n.op_type == "Sub" and list(n.input) == [hw_name, "x_min"]), None)
    if sub is None:
        raise ValueError("optimize_onnx: no input normalisation Sub(hw, x_min) found")
    div = _single_consumer(nodes, sub.output[0], "Div")
    first = _single_consumer(nodes, div.output[0], "Gemm")
    mul = next((n for n in nodes if n.op_type == "Mul" and "y_scale" in n.input), None)
    last = next((n for n in nodes if n.op_type == "Gemm" and mul is not None and n.output[0] in mul.input), None)
    if last is None or last.name == first.name:
        raise ValueError("optimize_onnx: no output de-normalisation Mul(Gemm(...), y_scale) after a hidden layer")
    add = _single_consumer(nodes, mul.output[0], "Add")
    for gemm in (first, last):
        _gemm_attributes(gemm)

    f64 = np.float64
    x_min, x_scale = arrays["x_min"].astype(f64), arrays["x_scale"].astype(f64)
    y_min, y_scale = arrays["y_min"].astype(f64), arrays["y_scale"].astype(f64)
    w1 = arrays[first.input[1]].astype(f64) / x_scale[None, :]
    b1 = arrays[first.input[2]].astype(f64) - w1 @ x_min
    w_last = arrays[last.input[1]].astype(f64) * y_scale[:, None]
    b_last = arrays[last.input[2]].astype(f64) * y_scale + y_min

    # the MLP: every node the last Gemm depends on, minus the normalisation
    producer = {out: n for n in nodes for out in n.output}
    keep, todo = set(), [last.name]
    by_name = {n.name: n for n in nodes}
    while todo:
        node = by_name[todo.pop()]
        if node.name in keep or node.name in (sub.name, div.name):
            continue
        keep.add(node.name)
        todo += [producer[i].name for i in node.input if i in producer]
    mlp = [n for n in nodes if n.name in keep and n.name != last.name]

    new_first = _gemm([hw_name, "opt_w1", "opt_b1"], first.output[0], first.name)
    new_first.attribute.extend(a for a in first.attribute if a.name not in ("transB",))
    mlp = [new_first if n.name == first.name else n for n in mlp]
    f32 = np.float32
    new_arrays = {"opt_w1": w1.astype(f32), "opt_b1": b1.astype(f32)}
    h_last = last.input[0]
    if meta.get("pt_target", "absolute") == "absolute":
        i_phi, i_eta, i_pt = (inputs.index(name) for name in ("hwPhiAtVtx", "hwEtaAtVtx", "hwPt"))
        s = np.zeros((3, len(inputs)))
        s[0, i_phi], s[1, i_eta], s[2, i_pt] = scales.PHI_LSB_CMSSW, scales.ETA_LSB, scales.PT_LSB
        two_pi = 2.0 * math.pi
        new_arrays |= {
            "opt_l1_scale": s.astype(f32),
            "opt_l1_offset": (np.array([0.0, 0.0, -scales.PT_LSB]) - b_last).astype(f32),
            "opt_w_last": (-w_last).astype(f32),
            "opt_wrap_in": np.array([[-1.0 / two_pi, 0.0, 0.0]], dtype=f32),
            "opt_half": np.array([0.5], dtype=f32),
            "opt_wrap_out": np.array([[two_pi], [0.0], [0.0]], dtype=f32),
        }
        tail = [
            _gemm([hw_name, "opt_l1_scale", "opt_l1_offset"], "opt_l1", "physics_l1_values"),
            _gemm([h_last, "opt_w_last", "opt_l1"], "opt_raw", "mlp_output_plus_l1"),
            _gemm(["opt_raw", "opt_wrap_in", "opt_half"], "opt_turns", "physics_phi_turns"),
            helper.make_node("Floor", ["opt_turns"], ["opt_k"], name="physics_floor"),
            _gemm(["opt_k", "opt_wrap_out", "opt_raw"], out_name, "physics_wrap"),
        ]
    else:  # keep the exported physics: it reads the de-normalised differences (the Add's output)
        new_arrays |= {"opt_w_last": w_last.astype(f32), "opt_b_last": b_last.astype(f32)}
        physics = [n for n in nodes if n.name not in keep and n.name not in (sub.name, div.name, mul.name, add.name)]
        tail = [_gemm([h_last, "opt_w_last", "opt_b_last"], add.output[0], last.name), *physics]
    used = {i for n in [*mlp, *tail] for i in n.input}
    initializers = [init for init in graph.initializer if init.name in used and init.name not in new_arrays]
    initializers += [numpy_helper.from_array(a, name) for name, a in new_arrays.items()]
    new_graph = helper.make_graph([*mlp, *tail], graph.name + "_inference", list(graph.input), list(graph.output),
                                  initializers)  # fmt: skip
    new = helper.make_model(new_graph, opset_imports=list(proto.opset_import), ir_version=proto.ir_version,
                            producer_name=proto.producer_name, doc_string=proto.doc_string)  # fmt: skip
    how = "scalers folded into the Gemms" + ("; physics as Gemm/Floor" if "opt_wrap_in" in new_arrays else "")
    # the value keeps the module's former name: metadata written into graphs never change
    add_metadata(new, {**meta, "optimized": f"l1refit.bench.optimize_onnx: {how}"})
    onnx.checker.check_model(new, full_check=True)
    with atomic_path(out_path) as tmp:
        onnx.save_model(new, str(tmp))
        _check_equivalent(onnx_path, tmp, inputs, check_rows)
    return Path(out_path)


def _check_equivalent(reference: str | Path, candidate: str | Path, inputs: Sequence[str], rows: int) -> None:
    x = np.concatenate([edge_rows(inputs), random_hw(rows, inputs, seed=12345)])
    want, got = run_onnx(reference, x).astype(np.float64), run_onnx(candidate, x).astype(np.float64)
    d_phi = np.abs(scales.wrap_phi(got[:, 0] - want[:, 0]))
    d_eta, d_pt = np.abs(got[:, 1] - want[:, 1]), np.abs(got[:, 2] - want[:, 2])
    tol_pt = 1e-4 * (1.0 + np.abs(want[:, 2]))
    if d_phi.max() > 1e-4 or d_eta.max() > 1e-4 or np.any(d_pt > tol_pt):
        raise RuntimeError(f"optimize_onnx: the new graph differs from {reference}: max |dphi| {d_phi.max():.3g}, "
                           f"|deta| {d_eta.max():.3g}, |dpt| {d_pt.max():.3g}")  # fmt: skip
    if np.any(got[:, 0] <= -np.float32(np.pi)) or np.any(got[:, 0] > np.float32(np.pi)):
        raise RuntimeError("optimize_onnx: phi outside (-pi, pi]")
