"""ONNX export: a deployable graph that matches PyTorch on real skim rows and carries its own metadata."""

import json

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest

from l1refit.analysis.metrics import prediction_metrics
from l1refit.config.loading import defaults
from l1refit.deploy.metadata import read_metadata
from l1refit.deploy.onnx_export import INPUT_NAME, OPSET, config_hash, export_onnx, parity, run_export
from l1refit.ml.spec import ModelSpec
from l1refit.ml.training import train
from l1refit.simulate.events import generate_file
from l1refit.skim.files import skim_file

MODEL_B = {"loss": "logcosh", "optimizer": "adadelta", "regularization": None, "hidden_activation": "relu",
           "output_activation": "linear"}  # fmt: skip
SPEC_B = ModelSpec.from_config(MODEL_B, hidden=(32, 32, 32))


@pytest.fixture(scope="module")
def skim(tmp_path_factory):
    """Real skim rows: a synthetic ZeroBias L1Ntuple through the skim."""
    tmp = tmp_path_factory.mktemp("export")
    generate_file(tmp / "zb.root", "zerobias", 40_000, seed=5, part=0, gen=defaults("generator"))
    skim_file(tmp / "zb.root", "l1ntuple", None, tmp / "skim.parquet", tmp / "cutflow.csv")
    return tmp / "skim.parquet"


@pytest.fixture(scope="module")
def trained(skim):
    model, _ = train(pd.read_parquet(skim), SPEC_B, epochs=3, batch_size=512, patience=3, validation_fraction=0.1,
                     target_clip=0.001, target_scale=30.0, seed=3, progress=lambda line: None)  # fmt: skip
    model.metadata.update({"model": "B", "training": {"seed": 1, "epochs": 3}})
    return model


def test_graph_is_checked_folded_dynamic_and_documented(trained, tmp_path):
    path = tmp_path / "B.onnx"
    proto = export_onnx(trained, path, "B")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    ops = {node.op_type for node in proto.graph.node}
    assert "BatchNormalization" not in ops and ops & {"Gemm", "MatMul"}  # BN folded into the dense layers
    assert proto.opset_import[0].version == OPSET
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == 4  # dynamic batch, four inputs
    meta = read_metadata(path)
    assert meta["model_id"] == "B" and json.loads(meta["inputs"]) == ["hwPhiAtVtx", "hwEtaAtVtx", "hwPt", "charge"]
    assert json.loads(meta["outputs"]) == ["phi", "eta", "pt"] and "GeV" in meta["output_units"]
    assert meta["training_config_sha256"] == config_hash({"seed": 1, "epochs": 3}) != config_hash({"seed": 2})


def test_parity_and_identical_table2_metrics(trained, skim, tmp_path):
    rows = pd.read_parquet(skim)
    path = tmp_path / "B.onnx"
    diff = run_export_model(trained, path, rows)
    assert max(diff.values()) <= 1e-5
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {INPUT_NAME: rows[list(trained.inputs)].to_numpy(np.float32)})[0]
    assert np.all((out[:, 0] > -np.pi) & (out[:, 0] <= np.pi))
    onnx_rows = rows.assign(pred_phi=out[:, 0], pred_eta=out[:, 1], pred_pt=out[:, 2])
    torch_rows = rows.assign(**trained.predict(rows))
    onnx_metrics, torch_metrics = prediction_metrics(onnx_rows), prediction_metrics(torch_rows)
    for key, value in torch_metrics.items():
        assert round(onnx_metrics[key], 4) == round(value, 4), key
    # integers as the hardware sends them, in any batch size, one row included
    assert np.allclose(session.run(None, {INPUT_NAME: rows[list(trained.inputs)].to_numpy(np.float32)[:1]})[0], out[:1])


def run_export_model(model, path, rows):
    export_onnx(model, path, "B")
    return parity(model, path, rows)


def test_run_export_checks_against_pytorch(trained, skim, tmp_path):
    model_path = tmp_path / "model.pt"
    trained.save(model_path)
    diff = run_export(model_path, tmp_path / "B.onnx", model_id="B", skim_path=skim)
    assert (tmp_path / "B.onnx").exists() and max(diff.values()) <= 1e-5
    with pytest.raises(RuntimeError, match="differ"):
        run_export(model_path, tmp_path / "C.onnx", model_id="C", skim_path=skim, tolerance=0.0)
    assert not (tmp_path / "C.onnx").exists()  # a graph that fails the check is not left behind


def test_errors(trained, tmp_path):
    bad = tmp_path / "not.onnx"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not.onnx: not an ONNX model"):
        read_metadata(bad)
    trained_no_phi = type(trained)(trained.module, trained.x_scaler, trained.y_scaler, trained.spec,
                                   ("hwEta", "hwEtaAtVtx", "hwPt", "charge"))  # fmt: skip
    with pytest.raises(ValueError, match="without input.s. hwPhiAtVtx"):
        export_onnx(trained_no_phi, tmp_path / "x.onnx")
