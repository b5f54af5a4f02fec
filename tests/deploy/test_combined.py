"""The regression and the fake classifier as one ONNX graph: its two outputs are the separate graphs', bit for bit."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from l1refit.deploy.combined import KIND, combine, export_combined
from l1refit.deploy.metadata import read_metadata
from l1refit.ml.fakeid_columns import FAKE_FEATURES


def test_combined_graph_gives_both_answers_of_the_separate_graphs(deployed, exported, tmp_path):
    _, _, _, candidates, _, fakeid_path = deployed
    regression_path = exported[1]
    path = tmp_path / "toy_fakeid.onnx"
    export_combined(regression_path, fakeid_path, path)
    session = ort.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["features"]
    assert [o.name for o in session.get_outputs()] == ["corrected", "fake_prob"]
    x = candidates[list(FAKE_FEATURES)].to_numpy(np.float32)
    corrected, fake_prob = session.run(None, {"features": x})
    reg_inputs = json.loads(read_metadata(regression_path)["inputs"])
    hw = candidates[reg_inputs].to_numpy(np.float32)
    np.testing.assert_array_equal(corrected, ort.InferenceSession(str(regression_path)).run(None, {"hw": hw})[0])
    np.testing.assert_array_equal(fake_prob, ort.InferenceSession(str(fakeid_path)).run(None, {"features": x})[0])
    meta = read_metadata(path)
    assert meta["kind"] == KIND and json.loads(meta["inputs"]) == list(FAKE_FEATURES)
    assert json.loads(meta["regression_inputs"]) == reg_inputs and meta["fakeid.kind"] == "l1refit-fakeid"


def test_a_regression_input_the_classifier_lacks_is_an_error(deployed, exported):
    regression, fakeid = onnx.load(str(exported[1])), onnx.load(str(deployed[5]))
    for entry in regression.metadata_props:
        if entry.key == "inputs":
            entry.value = json.dumps(["hwPhiAtVtx", "hwEtaAtVtx", "hwPt", "hwQual_no"])
    with pytest.raises(ValueError, match="the regression reads hwQual_no"):
        combine(regression, fakeid)
