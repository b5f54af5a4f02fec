"""``l1refit refit`` on CMSSW L1 scouting inputs: the split-99 EDM fixture, synthetic L1 scouting NanoAOD, split 0."""

import numpy as np
import pandas as pd
import pytest

from l1refit import scales
from l1refit.cli import main
from l1refit.deploy.refit import load_model, refit_file
from l1refit.formats import l1scouting

IDENTITY = ["run", "lumi", "orbit", "bx", "l1_index"]


def _check_refit(out: pd.DataFrame, onnx_path) -> None:
    model = load_model(onnx_path)
    x = out[list(model.inputs)].to_numpy(np.float32)
    corrected = model(x)
    np.testing.assert_allclose(out["refit_phi"], corrected[:, 0], rtol=1e-6)
    np.testing.assert_allclose(out["refit_pt"], corrected[:, 2], rtol=1e-6)
    np.testing.assert_array_equal(out["l1_pt"], scales.hw_to_pt(out["hwPt"], convention="scouting"))
    np.testing.assert_array_equal(out["l1_eta"], scales.hw_to_eta(out["hwEtaAtVtx"], convention="scouting"))
    np.testing.assert_array_equal(out["l1_phi"], scales.hw_to_phi(out["hwPhiAtVtx"], convention="scouting"))


def test_refit_edm_split99_fixture(exported, tmp_path, capsys, l1scouting_edm):
    SPLIT99 = l1scouting_edm[0]
    _, onnx_path, _, _ = exported
    out_path = tmp_path / "edm.parquet"
    assert main(["refit", "--model", str(onnx_path), str(SPLIT99), str(out_path)]) == 0
    assert "format: l1scouting-edm, muons: 6" in capsys.readouterr().out
    out = pd.read_parquet(out_path)
    assert list(out.columns[:5]) == IDENTITY
    np.testing.assert_array_equal(out["bx"], [42, 42, 42, 512, 512, 512])
    np.testing.assert_array_equal(out["hwPt"], [1, 2, 3, 1, 2, 3])
    assert (out["orbit"] == 1).all() and {"hwQual", "tfMuonIndex", "refit_pt", "l1_pt"} <= set(out.columns)
    _check_refit(out, onnx_path)


@pytest.mark.parametrize("hardware", [True, False])
def test_refit_synthetic_nano(exported, tmp_path, hardware, l1scouting_rows):
    _, onnx_path, _, _ = exported
    rows = l1scouting_rows(2000, seed=9)
    path = tmp_path / "nano.root"
    l1scouting.write_nano(path, rows, hardware=hardware)
    counts = refit_file(onnx_path, path, tmp_path / "out.parquet", chunk_size=300)
    assert counts["format"] == "l1scouting-nano" and counts["muons"] == 2000 and counts["chunks"] > 1
    out = pd.read_parquet(tmp_path / "out.parquet")
    for name in ("orbit", "bx", "hwPt", "hwEtaAtVtx", "hwPhiAtVtx", "hwQual", "tfMuonIndex"):
        np.testing.assert_array_equal(out[name], rows[name], err_msg=name)
    np.testing.assert_array_equal(out["charge"], rows["hwCharge"])
    _check_refit(out, onnx_path)


def test_refit_split0_is_one_line_and_no_output(exported, tmp_path, capsys, l1scouting_edm):
    SPLIT0 = l1scouting_edm[1]
    _, onnx_path, _, _ = exported
    out_path = tmp_path / "out.parquet"
    assert main(["refit", "--model", str(onnx_path), str(SPLIT0), str(out_path)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("l1refit: error:")]
    assert len(err) == 1 and SPLIT0.name in err[0] and "split level 99" in err[0]
    assert not out_path.exists()
