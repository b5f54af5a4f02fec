"""The regression and the fake classifier as one ONNX graph: one input, the corrected values and the fake probability.

The two exported graphs (``results/onnx/{model}.onnx``, input ``hw`` (N, 4); ``results/onnx/fakeid.onnx``, input
``features`` (N, 10)) stay as they are: users' scripts rely on the regression's one (N, 4) input. This graph
(``results/onnx/{model}_fakeid.onnx``) is for an engine that wants one model with both answers: it takes the
classifier's ``features`` (the regression's inputs are among them: a ``Gather`` picks their columns) and gives the
regression's ``corrected`` (N, 3) and the classifier's ``fake_prob`` (N, 1) as its two outputs. Both subgraphs are
copied node for node (names prefixed), so its outputs are the separate graphs' (checked on export). The neighbour
features are inputs, computed outside the graph as for ``fakeid.onnx`` (docs/deploy.md §5).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, compose, helper, numpy_helper

from l1refit import __version__
from l1refit.deploy.metadata import add_metadata
from l1refit.deploy.runtime import CPU
from l1refit.formats.output import atomic_path

KIND = "l1refit-regression-fakeid"
INPUT_NAME = "features"
OUTPUTS = ("corrected", "fake_prob")
TOLERANCE = 1e-6  # |combined − separate| allowed: the same nodes, float32 rounding of a differently fused graph


def _metadata(proto: onnx.ModelProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in proto.metadata_props}


def combine(regression: onnx.ModelProto, fakeid: onnx.ModelProto) -> onnx.ModelProto:
    """One graph with input ``features`` (the classifier's columns) and outputs ``corrected`` and ``fake_prob``;
    a ValueError when the regression reads a column the classifier does not, or the graphs' opsets differ."""
    reg_meta, fake_meta = _metadata(regression), _metadata(fakeid)
    reg_inputs, features = json.loads(reg_meta["inputs"]), json.loads(fake_meta["inputs"])
    missing = [name for name in reg_inputs if name not in features]
    if missing:
        raise ValueError(f"the regression reads {', '.join(missing)}, which the fake classifier's features "
                         f"({', '.join(features)}) do not hold")  # fmt: skip
    if list(regression.opset_import) != list(fakeid.opset_import):
        raise ValueError("the regression and the fake classifier were exported with different opsets")
    reg = compose.add_prefix(regression, "regression/")
    fake = compose.add_prefix(fakeid, "fakeid/")
    columns = numpy_helper.from_array(np.array([features.index(n) for n in reg_inputs], np.int64), "regression/columns")
    (reg_in,), (reg_out,) = reg.graph.input, reg.graph.output
    (fake_in,), (fake_out,) = fake.graph.input, fake.graph.output
    nodes = [
        helper.make_node("Gather", [INPUT_NAME, columns.name], [reg_in.name], axis=1, name="regression/inputs"),
        helper.make_node("Identity", [INPUT_NAME], [fake_in.name], name="fakeid/inputs"),
        *reg.graph.node,
        *fake.graph.node,
        helper.make_node("Identity", [reg_out.name], [OUTPUTS[0]], name="corrected"),
        helper.make_node("Identity", [fake_out.name], [OUTPUTS[1]], name="fake_prob"),
    ]
    graph = helper.make_graph(
        nodes, "l1refit_regression_fakeid",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", len(features)])],
        outputs=[helper.make_tensor_value_info(OUTPUTS[0], TensorProto.FLOAT, ["batch", 3]),
                 helper.make_tensor_value_info(OUTPUTS[1], TensorProto.FLOAT, ["batch", 1])],
        initializer=[*reg.graph.initializer, *fake.graph.initializer, columns],
        value_info=[*reg.graph.value_info, *fake.graph.value_info],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=list(regression.opset_import), ir_version=regression.ir_version)
    proto.producer_name = "l1refit"
    proto.doc_string = "l1refit: corrected phi, eta, pT and the fake probability of a selected L1 muon"
    add_metadata(proto, {
        "kind": KIND,
        "producer": f"l1refit {__version__}",
        "inputs": json.dumps(features),
        "input_name": INPUT_NAME,
        "outputs": json.dumps(list(OUTPUTS)),
        "regression_inputs": json.dumps(reg_inputs),
        **{f"regression.{key}": value for key, value in reg_meta.items()},
        **{f"fakeid.{key}": value for key, value in fake_meta.items()},
    })  # fmt: skip
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_combined(regression: str | Path, fakeid: str | Path, path: str | Path, *, rows: int = 4096,
                    seed: int = 0) -> onnx.ModelProto:  # fmt: skip
    """Write the combined graph of two exported graphs (atomically), after checking on ``rows`` random integer
    feature rows (in the classifier's standardisation range) that it gives what each graph gives alone."""
    reg_proto, fake_proto = onnx.load(str(regression)), onnx.load(str(fakeid))
    proto = combine(reg_proto, fake_proto)
    features = json.loads(_metadata(fake_proto)["inputs"])
    reg_inputs = json.loads(_metadata(reg_proto)["inputs"])
    x = _check_rows(features, rows, seed)
    alone = {
        "corrected": _run(reg_proto, x[:, [features.index(n) for n in reg_inputs]]),
        "fake_prob": _run(fake_proto, x),
    }
    combined = dict(zip(OUTPUTS, _run(proto, x, all_outputs=True), strict=True))
    for name in OUTPUTS:
        diff = float(np.max(np.abs(combined[name] - alone[name])))
        if not diff <= TOLERANCE:
            raise RuntimeError(f"{path}: the combined graph's {name} differs from the separate graph's by {diff}")
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return proto


def _check_rows(features: list[str], rows: int, seed: int) -> np.ndarray:
    """Plausible integer inputs: φ 0..575, η ±80, pT 6..100, charge ±1, quality 12..15, the neighbours' ranges."""
    rng = np.random.default_rng(seed)
    ranges = {"hwPhiAtVtx": (0, 576), "hwEtaAtVtx": (-80, 81), "hwPt": (6, 100), "hwQual": (12, 16),
              "n_l1_bx": (1, 4), "near_dphi": (0, 289), "near_deta": (0, 160), "near_dqual": (-3, 4),
              "near_dpt": (-80, 81)}  # fmt: skip
    x = np.empty((rows, len(features)), np.float32)
    for j, name in enumerate(features):
        x[:, j] = rng.choice([-1, 1], rows) if name == "charge" else rng.integers(*ranges.get(name, (0, 10)), rows)
    return x


def _run(proto: onnx.ModelProto, x: np.ndarray, all_outputs: bool = False):
    session = ort.InferenceSession(proto.SerializeToString(), providers=list(CPU))
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    return outputs if all_outputs else outputs[0]
