"""``l1refit refit --firmware``: the emulated fixed-point design applied to real files (deploy/fpga/refit.py).

The design is built from the toy model of tests/deploy/conftest.py as the workflow builds it (firmware model in
hardware units, quantised, saved as JSON); no hls4ml is needed (test_fpga.py checks the emulator against it). Its
refit must equal ``scan.firmware_corrected`` bit for bit, and the ONNX refit of the same model within the worst-case
error of the design's types.
"""

import json
import subprocess
import sys

import awkward as ak
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import uproot

from l1refit.cli import main
from l1refit.deploy import friend
from l1refit.deploy.fpga.design import Design, build_design
from l1refit.deploy.fpga.firmware import firmware_model
from l1refit.deploy.fpga.scan import firmware_corrected
from l1refit.deploy.refit import REFIT, RefitError, refit_file
from l1refit.formats import l1scouting

PRECISION = "ap_fixed<16,8,AP_RND,AP_SAT>"  # no layer saturates on the full uGMT ranges (measured on this model)


@pytest.fixture(scope="module")
def design(exported, tmp_path_factory):
    """(design.json path, loaded Design, float firmware model) of the toy model at PRECISION."""
    firmware = firmware_model(exported[3], "toy", units="hardware")
    path = tmp_path_factory.mktemp("firmware") / "design.json"
    build_design(firmware, PRECISION).save(path)
    return path, Design.load(path), firmware


@pytest.fixture(scope="module")
def skim_parquet(exported, tmp_path_factory):
    path = tmp_path_factory.mktemp("skim") / "skim.parquet"
    exported[2].to_parquet(path, row_group_size=1000)
    return path


@pytest.fixture(scope="module")
def scouting_nano(tmp_path_factory, l1scouting_rows):
    """An L1 scouting NanoAOD over the full uGMT ranges (hwPt 1-511, |hwEta| ≤ 230), written by write_nano."""
    path = tmp_path_factory.mktemp("nano") / "nano.root"
    l1scouting.write_nano(path, l1scouting_rows(2000, seed=9))
    return path


def worst_case(firmware, design: Design, hw: np.ndarray) -> np.ndarray:
    """Per row and output, the largest |fixed − float| the design's types allow where nothing overflows.

    Layer by layer, y_fixed − y = W_q·e + (W_q − W)·x + (b_q − b) + r, with e the error of the layer's input and
    |r| ≤ one LSB of the result type; ReLU does not enlarge an error. The weights' quantisation errors are the real
    ones.
    """
    err, act = np.zeros_like(hw, dtype=np.float64), hw.astype(np.float64)
    for (_, weight, bias, relu), layer in zip(firmware.dense_layers(), design.layers, strict=True):
        w_q, b_q = layer.weight_type.to_float(layer.weight), layer.bias_type.to_float(layer.bias)
        lsb = 2.0**-layer.result_type.frac
        err = err @ np.abs(w_q).T + np.abs(act) @ np.abs(w_q - weight).T + np.abs(b_q - bias) + lsb
        act = act @ weight.T + bias
        if relu:
            act = np.maximum(act, 0.0)
    return err


def test_firmware_refit_of_a_skim_is_the_emulated_design_row_by_row(design, exported, skim_parquet, tmp_path):
    path, loaded, firmware = design
    out = tmp_path / "fw.parquet"
    counts = refit_file(None, skim_parquet, out, firmware=path, chunk_size=700)
    assert (counts["muons"], counts["chunks"], counts["format"]) == (3000, 5, "parquet")
    table = pd.read_parquet(out)
    skim = exported[2]
    want = firmware_corrected(loaded, skim).astype(np.float32)  # φ, η, pT
    for j, name in enumerate(("refit_phi", "refit_eta", "refit_pt")):
        np.testing.assert_array_equal(table[name].to_numpy(), want[:, j], err_msg=name)
    np.testing.assert_array_equal(table["l1_pt"], skim["l1_pt"].astype(np.float32))
    metadata = {k.decode(): v.decode() for k, v in pq.read_schema(out).metadata.items()}
    assert metadata["l1refit.refit.engine"] == "firmware" and metadata["l1refit.refit.model"] == str(path)
    assert metadata["l1refit.refit.firmware_precision"] == PRECISION and metadata["l1refit.refit.model_id"] == "toy"
    assert metadata["l1refit.refit.firmware_units"] == "hardware"

    onnx_out = tmp_path / "onnx.parquet"
    refit_file(exported[1], skim_parquet, onnx_out, chunk_size=700)
    onnx = pd.read_parquet(onnx_out)
    assert list(onnx.columns) == list(table.columns)  # the same output, other refit values
    assert pq.read_schema(onnx_out).metadata[b"l1refit.refit.engine"] == b"onnx"
    _assert_within_the_fixed_point_tolerance(table, onnx, firmware, loaded)


def _assert_within_the_fixed_point_tolerance(fw: pd.DataFrame, onnx: pd.DataFrame, firmware, design) -> None:
    """|firmware − ONNX| ≤ the types' worst case (in physical units) plus the float32 graph's rounding, and > 0."""
    assert firmware.pt_target == "absolute"  # pT = L1 pT − ΔpT: the bound carries over unscaled
    hw = fw[list(design.inputs)].to_numpy(np.float64)
    bound = worst_case(firmware, design, hw) * np.asarray(design.output_scale)
    d_phi = np.angle(np.exp(1j * (fw["refit_phi"].to_numpy(np.float64) - onnx["refit_phi"].to_numpy(np.float64))))
    deviation = np.column_stack([d_phi, *(fw[n].to_numpy(np.float64) - onnx[n] for n in ("refit_eta", "refit_pt"))])
    float32 = 4e-6 * (1.0 + np.abs(onnx[["refit_phi", "refit_eta", "refit_pt"]].to_numpy(np.float64)))
    assert np.all(np.abs(deviation) <= bound + float32), np.max(np.abs(deviation) / bound, axis=0)
    assert np.all(np.abs(deviation).max(axis=0) > 0)  # the firmware, not the float graph


def test_firmware_refit_of_an_l1_scouting_nano_and_its_friend_tree(design, exported, scouting_nano, tmp_path):
    path, loaded, firmware = design
    out = tmp_path / "fw.parquet"
    counts = refit_file(None, scouting_nano, out, firmware=path, chunk_size=300)
    assert counts["format"] == "l1scouting-nano" and counts["muons"] == 2000 and counts["chunks"] > 1
    table = pd.read_parquet(out)
    want = firmware_corrected(loaded, table).astype(np.float32)  # from the hardware columns written beside
    np.testing.assert_array_equal(table[["refit_phi", "refit_eta", "refit_pt"]].to_numpy(), want)
    assert table["hwPt"].max() > 400  # the full range, far beyond the training skim's
    onnx_out = tmp_path / "onnx.parquet"
    refit_file(exported[1], scouting_nano, onnx_out, chunk_size=300)
    onnx = pd.read_parquet(onnx_out)
    np.testing.assert_array_equal(onnx["hwPt"], table["hwPt"])
    _assert_within_the_fixed_point_tolerance(table, onnx, firmware, loaded)

    tree_path = tmp_path / "fw.root"  # the friend-tree output holds the same values, entry by entry
    assert refit_file(None, scouting_nano, tree_path, firmware=path, chunk_size=300)["muons"] == 2000
    values = uproot.open(tree_path)[friend.DEFAULT_TREE].arrays(["L1MuRefit_pt", "L1MuRefit_phi"], how=dict)
    for field in ("pt", "phi"):
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(values[f"L1MuRefit_{field}"])), table[f"refit_{field}"])
    metadata = json.loads(str(uproot.open(tree_path)[friend.METADATA_KEY]))
    assert metadata["l1refit.refit.engine"] == "firmware"
    assert metadata["l1refit.refit.firmware_precision"] == PRECISION


def test_cli_firmware_refit_without_torch_or_hls4ml(design, skim_parquet, tmp_path):
    path, _, _ = design
    out = tmp_path / "out.parquet"
    code = (
        "import sys; from l1refit.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules and 'hls4ml' not in sys.modules, 'heavy import'; sys.exit(rc)"
    )
    argv = ["refit", "--firmware", str(path), str(skim_parquet), str(out), "--chunk-size", "1000"]
    run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "muons: 3000, chunks: 3" in run.stdout and f"with the firmware {path}" in run.stderr
    assert set(REFIT) <= set(pq.read_schema(out).names)


# ---------------------------------------------------------------------------------------------------------------
# errors


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("l1refit: error: ")]
    assert len(lines) == 1, err  # main() returned 2: the error was caught, this line is all it printed of it
    return lines[0]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("hwPt", 600, r"hwPt: value 600 is not an integer of ap_uint<9> \[0, 511\]"),
     ("hwEtaAtVtx", -300, r"hwEtaAtVtx: value -300 is not an integer of ap_int<9>"),
     ("charge", 0.5, r"charge: value 0.5 is not an integer")],
)  # fmt: skip
def test_corrupt_hardware_integers_are_one_line_naming_the_file(design, exported, tmp_path, capsys, column, value,
                                                                message):  # fmt: skip
    path = design[0]
    rows = exported[2].iloc[:2000].copy()
    rows[column] = rows[column].astype(np.float64)
    rows.loc[1500, column] = value  # in the second chunk
    corrupt = tmp_path / "corrupt.parquet"
    rows.to_parquet(corrupt)
    out = tmp_path / "out.parquet"
    with pytest.raises(RefitError, match=rf"corrupt\.parquet \(parquet\): chunk 2: input {message}"):
        refit_file(None, corrupt, out, firmware=path, chunk_size=1000)
    assert main(["refit", "--firmware", str(path), str(corrupt), str(out)]) == 2
    line = _one_error_line(capsys)
    assert "corrupt.parquet" in line and column in line and "uGMT" in line
    assert list(tmp_path.iterdir()) == [corrupt]  # no output, no temporary


def _not_designs(design_path, onnx_path) -> dict[str, tuple[bytes, str]]:
    """Files that are no usable design: content and the message expected after the file's name."""
    data = json.loads(design_path.read_text())
    dropped = {**data, "layers": data["layers"][:-1]}  # the last layer missing: 32 outputs, not 3
    no_layers = {k: v for k, v in data.items() if k != "layers"}
    wide = {**data, "layers": [{**layer, "result_type": "ap_fixed<60,30>"} | ({"relu_type": "ap_fixed<60,30>"}
                               if layer["relu"] else {}) for layer in data["layers"]]}  # fmt: skip
    last_relu = {**data, "layers": [*data["layers"][:-1], {**data["layers"][-1], "relu_type": "ap_fixed<16,8>"}]}
    text = {"other_format.json": ('{"format": "x"}', r"not an FPGA design \('l1refit-fpga-design/1'\), format 'x'"),
            "junk.json": ("this is not json", "cannot read an FPGA design: Expecting value"),
            "list.json": ("[1, 2]", r"not an FPGA design file \(l1refit-fpga-design/1\): AttributeError"),
            "no_layers.json": (json.dumps(no_layers), "not an FPGA design file .* KeyError 'layers'"),
            "dropped.json": (json.dumps(dropped), "not a usable FPGA design: it gives 32 outputs, a refit needs 3"),
            "wide.json": (json.dumps(wide), "not a usable FPGA design: .* beyond exact float64 emulation"),
            "relu.json": (json.dumps(last_relu), "not a usable FPGA design: layer dense4 has relu None")}  # fmt: skip
    return {name: (content.encode(), message) for name, (content, message) in text.items()} | {
        "model.onnx": (onnx_path.read_bytes(), "not an FPGA design file: 'utf-8' codec can't decode")
    }


def test_a_file_that_is_no_design_is_one_line(design, skim_parquet, exported, tmp_path, capsys):
    out = tmp_path / "out.parquet"
    for name, (content, message) in _not_designs(design[0], exported[1]).items():
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(RefitError, match=rf"{name}: {message}"):
            refit_file(None, skim_parquet, out, firmware=bad)
        assert main(["refit", "--firmware", str(bad), str(skim_parquet), str(out)]) == 2
        line = _one_error_line(capsys)
        assert name in line and "design" in line, line
        assert not out.exists()
    missing = tmp_path / "missing.json"
    assert main(["refit", "--firmware", str(missing), str(skim_parquet), str(out)]) == 2
    assert "missing.json: no such design file" in _one_error_line(capsys) and not out.exists()


def test_exactly_one_of_model_and_firmware(design, exported, skim_parquet, tmp_path, capsys):
    out = tmp_path / "out.parquet"
    both = ["refit", "--model", str(exported[1]), "--firmware", str(design[0]), str(skim_parquet), str(out)]
    for argv in (both, ["refit", str(skim_parquet), str(out)]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "not allowed with argument" in err and "one of the arguments --model --firmware is required" in err
    for model, firmware in ((exported[1], design[0]), (None, None)):
        with pytest.raises(ValueError, match="exactly one of an ONNX model and a firmware design"):
            refit_file(model, skim_parquet, out, firmware=firmware)
    with pytest.raises(RefitError, match="overwrite"):
        refit_file(None, skim_parquet, design[0], firmware=design[0])
    assert not out.exists() and design[1].to_dict() == Design.load(design[0]).to_dict()
