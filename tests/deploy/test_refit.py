"""``l1refit refit``: an exported model applied to skims, L1Ntuples and scouting raw files, and its errors.

One tiny model is trained (1 epoch on a toy skim) and exported per module; the refit values are checked against
``TrainedModel.predict`` on the same muons, with the L1 values computed from the hardware integers as the graph does.
"""

import logging
import threading

import awkward as ak
import numpy as np
import onnx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from l1refit import scales
from l1refit.cli import main
from l1refit.deploy import refit
from l1refit.deploy.onnx_export import export_onnx
from l1refit.deploy.readers import PHYSICAL
from l1refit.deploy.refit import REFIT, RefitError, load_model, refit_file
from l1refit.errors import FormatError, L1RefitError
from l1refit.formats import l1ntuple, scouting
from l1refit.ml.spec import ModelSpec
from l1refit.ml.training import train


def _toy_skim(n: int, seed: int = 0) -> pd.DataFrame:
    """Skim-shaped rows (identity, hardware integers, L1 and offline values) with smooth L1 − offline differences."""
    rng = np.random.default_rng(seed)
    hw_phi = rng.integers(0, 576, n).astype(np.int16)
    hw_eta = rng.integers(-80, 82, n).astype(np.int16)
    hw_pt = rng.integers(7, 91, n).astype(np.int16)
    charge = rng.choice(np.array([-1, 1], np.int8), n)
    l1_pt = scales.hw_to_pt(hw_pt)
    l1_eta = scales.hw_to_eta(hw_eta)
    l1_phi = scales.hw_to_phi(hw_phi)
    return pd.DataFrame({
        "run": np.full(n, 325000, np.uint32), "lumi": np.full(n, 7, np.uint32),
        "event": np.arange(n, dtype=np.uint64) // 2, "l1_index": (np.arange(n) % 2).astype(np.uint8),
        "hwPhiAtVtx": hw_phi, "hwEtaAtVtx": hw_eta, "hwPt": hw_pt, "charge": charge,
        "hwQual": np.full(n, 12, np.uint8), "tfMuonIndex": rng.integers(36, 72, n).astype(np.uint8),
        "l1_pt": l1_pt.astype(np.float32), "l1_eta": l1_eta.astype(np.float32), "l1_phi": l1_phi.astype(np.float32),
        "reco_pt": (0.9 * l1_pt).astype(np.float32), "reco_eta": (l1_eta - 0.01 * l1_eta**2).astype(np.float32),
        "reco_phi": scales.delta_phi(l1_phi, 0.3 * charge / l1_pt).astype(np.float32),
    })  # fmt: skip


@pytest.fixture(scope="module")
def refit_model(tmp_path_factory):
    """(TrainedModel, path of its ONNX export)."""
    spec = ModelSpec("logcosh", "adam", None, "relu", "linear", hidden=(16, 16))
    model, _ = train(_toy_skim(3000), spec, epochs=1, batch_size=256, patience=1, validation_fraction=0.2, seed=7,
                     progress=lambda line: None)  # fmt: skip
    path = tmp_path_factory.mktemp("model") / "m.onnx"
    export_onnx(model, path, "T")
    return model, path


@pytest.fixture(scope="module")
def skim_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("skim") / "skim.parquet"
    pq.write_table(pa.Table.from_pandas(_toy_skim(2500, seed=1), preserve_index=False), path, row_group_size=1000)
    return path


def _expected_from_hardware(model, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """``TrainedModel.predict`` with the L1 values computed from the hardware integers (CMSSW scales)."""
    df = rows[list(model.inputs)].copy()
    df["l1_pt"] = scales.hw_to_pt(rows["hwPt"])
    df["l1_eta"] = scales.hw_to_eta(rows["hwEtaAtVtx"])
    df["l1_phi"] = scales.hw_to_phi(rows["hwPhiAtVtx"])
    return model.predict(df)


def _assert_refit_equals(out: pd.DataFrame, expected: dict[str, np.ndarray], atol: float = 1e-5) -> None:
    assert len(out) == len(expected["pred_pt"])
    dphi = scales.delta_phi(out["refit_phi"].to_numpy(), expected["pred_phi"])
    deta = out["refit_eta"].to_numpy() - expected["pred_eta"]
    # pT up to 255 GeV in the data files: float32 carries ~1e-7 of it, so compare relative above 1 GeV
    dpt = (out["refit_pt"].to_numpy() - expected["pred_pt"]) / np.maximum(1.0, np.abs(expected["pred_pt"]))
    assert max(np.abs(dphi).max(initial=0), np.abs(deta).max(initial=0), np.abs(dpt).max(initial=0)) <= atol


# ---------------------------------------------------------------------------------------------------------------
# the three input formats


def test_skim_refit_equals_trained_model_predict(refit_model, skim_file, tmp_path, caplog):
    model, onnx_path = refit_model
    out_path = tmp_path / "out.parquet"
    caplog.set_level(logging.INFO, logger="l1refit")
    counts = refit_file(onnx_path, skim_file, out_path, chunk_size=700)
    lines = [message for message in caplog.messages if ": chunk " in message]
    skim = pd.read_parquet(skim_file)
    out = pd.read_parquet(out_path)
    assert counts["muons"] == len(out) == len(skim) and counts["chunks"] == 4 and counts["format"] == "parquet"
    assert len(lines) == 4 and "2500 muons" in lines[-1]
    assert list(out.columns) == [
        "run", "lumi", "event", "l1_index", "hwPhiAtVtx", "hwEtaAtVtx", "hwPt", "charge", "hwQual", "tfMuonIndex",
        *PHYSICAL, *REFIT,
    ]  # fmt: skip
    for column in out.columns[:-3]:
        np.testing.assert_array_equal(out[column], skim[column])  # identity, hardware and L1 values as stored
    expected = model.predict(skim)
    assert np.max(np.abs(out["refit_eta"] - expected["pred_eta"])) <= 1e-5
    assert np.max(np.abs(out["refit_pt"] - expected["pred_pt"])) <= 1e-5
    assert np.max(np.abs(scales.delta_phi(out["refit_phi"], expected["pred_phi"]))) <= 1e-5
    assert (out["refit_pt"] != out["l1_pt"]).any()  # the model did correct something
    metadata = pq.read_schema(out_path).metadata
    assert metadata[b"l1refit.refit.model_id"] == b"T" and metadata[b"l1refit.refit.input_format"] == b"parquet"


def test_optimised_and_exported_graphs_give_the_same_refit(refit_model, skim_file, tmp_path):
    _, onnx_path = refit_model
    runs = {}
    for optimise, compression in ((True, "none"), (False, "zstd")):
        out_path = tmp_path / f"{optimise}.parquet"
        counts = refit_file(onnx_path, skim_file, out_path, chunk_size=900, optimise=optimise, compression=compression)
        runs[counts["graph"]] = pd.read_parquet(out_path)
        metadata = pq.read_schema(out_path).metadata
        assert metadata[b"l1refit.refit.graph"] == counts["graph"].encode()
        group = pq.ParquetFile(out_path).metadata.row_group(0)
        assert group.column(0).compression == {"none": "UNCOMPRESSED"}.get(compression, compression.upper())
        assert group.column(0).is_stats_set and not group.column(group.num_columns - 1).is_stats_set  # identity only
    optimised, exported = runs["optimised"], runs["exported"]
    assert optimised.columns.tolist() == exported.columns.tolist()
    np.testing.assert_array_equal(optimised.iloc[:, :-3], exported.iloc[:, :-3])
    for column in REFIT:  # the same network: equal within float32 rounding, not bit for bit
        np.testing.assert_allclose(optimised[column], exported[column], rtol=2e-6, atol=2e-6)
    assert load_model(onnx_path).graph == "optimised" and load_model(onnx_path, optimise=False).graph == "exported"
    with pytest.raises(ValueError, match="compression must be one of"):
        refit_file(onnx_path, skim_file, tmp_path / "x.parquet", compression="bzip2")


def test_a_graph_that_cannot_be_optimised_runs_as_exported(refit_model, skim_file, tmp_path, caplog):
    """An export whose normalisation node reads a renamed constant: the same function, which optimize_onnx does not
    recognise; the refit warns, runs the file's graph and says so in the output."""
    model, onnx_path = refit_model
    proto = onnx.load_model(str(onnx_path))
    for init in proto.graph.initializer:
        if init.name == "x_min":
            init.name = "x_offset"
    for node in proto.graph.node:
        node.input[:] = ["x_offset" if name == "x_min" else name for name in node.input]
    renamed = tmp_path / "renamed.onnx"
    onnx.save_model(proto, str(renamed))
    caplog.set_level(logging.WARNING, logger="l1refit")
    counts = refit_file(renamed, skim_file, tmp_path / "out.parquet")
    assert counts["graph"] == "exported" and "cannot be optimised" in caplog.text
    assert pq.read_schema(tmp_path / "out.parquet").metadata[b"l1refit.refit.graph"] == b"exported"
    out = pd.read_parquet(tmp_path / "out.parquet")
    expected = model.predict(pd.read_parquet(skim_file))
    assert np.max(np.abs(out["refit_pt"] - expected["pred_pt"])) <= 1e-5


def test_refit_with_the_compiled_kernel(refit_model, skim_file, tmp_path, capsys):
    model, onnx_path = refit_model
    onnx_out, kernel_out = tmp_path / "onnx.parquet", tmp_path / "kernel.parquet"
    refit_file(onnx_path, skim_file, onnx_out, chunk_size=700)
    counts = refit_file(onnx_path, skim_file, kernel_out, chunk_size=700, kernel=True, threads=2)
    assert counts["engine"] == "kernel" and counts["graph"] == "optimised"
    metadata = pq.read_schema(kernel_out).metadata
    assert metadata[b"l1refit.refit.engine"] == b"kernel" and metadata[b"l1refit.refit.graph"] == b"optimised"
    with_onnx, with_kernel = pd.read_parquet(onnx_out), pd.read_parquet(kernel_out)
    np.testing.assert_array_equal(with_kernel.drop(columns=list(REFIT)), with_onnx.drop(columns=list(REFIT)))
    assert np.abs(scales.delta_phi(with_kernel["refit_phi"], with_onnx["refit_phi"])).max() < 1e-5
    np.testing.assert_allclose(with_kernel[["refit_eta", "refit_pt"]], with_onnx[["refit_eta", "refit_pt"]],
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    assert (with_kernel["refit_pt"] != with_kernel["l1_pt"]).any()
    main(["refit", "--model", str(onnx_path), str(skim_file), str(tmp_path / "cli.parquet"), "--kernel"])
    assert "engine: kernel" in capsys.readouterr().out
    with pytest.raises(ValueError, match="needs optimise=True"):
        refit_file(onnx_path, skim_file, tmp_path / "x.parquet", kernel=True, optimise=False)


def test_parquet_without_l1_floats_gets_them_from_the_hardware(refit_model, tmp_path):
    model, onnx_path = refit_model
    skim = _toy_skim(300, seed=2).drop(columns=list(PHYSICAL))
    src = tmp_path / "hw_only.parquet"
    skim.to_parquet(src)
    refit_file(onnx_path, src, tmp_path / "out.parquet")
    out = pd.read_parquet(tmp_path / "out.parquet")
    np.testing.assert_allclose(out["l1_pt"], scales.hw_to_pt(skim["hwPt"]), rtol=1e-7)
    _assert_refit_equals(out, _expected_from_hardware(model, skim))


def test_empty_parquet_gives_an_empty_table_with_the_columns(refit_model, tmp_path):
    _, onnx_path = refit_model
    src = tmp_path / "empty.parquet"
    _toy_skim(0).to_parquet(src)
    counts = refit_file(onnx_path, src, tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    assert counts["muons"] == table.num_rows == 0 and {*PHYSICAL, *REFIT} <= set(table.column_names)


def test_cmssw_l1ntuple_refit(refit_model, cmssw_ntuple, tmp_path):
    model, onnx_path = refit_model
    out_path = tmp_path / "l1.parquet"
    counts = refit_file(onnx_path, cmssw_ntuple, out_path, chunk_size=300)
    out = pd.read_parquet(out_path)
    events = l1ntuple.read(cmssw_ntuple)
    muons = ak.flatten(events.L1Mu)
    assert (counts["muons"], counts["chunks"], counts["format"], len(out)) == (1225, 4, "l1ntuple", 1225)
    assert {"run", "lumi", "event", "bx", "orbit", "l1_index", "muon_bx", "hwQual", "tfMuonIndex"} <= set(out.columns)
    n = ak.to_numpy(ak.num(events.L1Mu))
    np.testing.assert_array_equal(out["event"], np.repeat(ak.to_numpy(events.event), n))
    np.testing.assert_array_equal(out["l1_index"], ak.to_numpy(ak.flatten(ak.local_index(events.L1Mu.pt))))
    for column, field in (("hwPt", "hwPt"), ("muon_bx", "bx"), ("l1_pt", "pt"), ("l1_eta", "eta"), ("l1_phi", "phi")):
        np.testing.assert_array_equal(out[column], ak.to_numpy(muons[field]))
    _assert_refit_equals(out, _expected_from_hardware(model, out))


def _scouting_records(rng, n: int) -> ak.Array:
    """BX records of 0-3 valid barrel muons (kept by both eras' readers), muons of each record in slot order."""
    counts = rng.integers(0, 4, n)
    m = int(counts.sum())
    muons = {
        "hwPt": rng.integers(2, 200, m), "hwQual": rng.integers(1, 16, m), "hwEta": rng.integers(-80, 80, m),
        "hwPhi": rng.integers(0, 576, m), "hwEtaAtVtx": rng.integers(-80, 80, m),
        "hwPhiAtVtx": rng.integers(0, 576, m), "charge": rng.choice([-1, 1], m), "hwIso": rng.integers(0, 4, m),
        "tfMuonIndex": rng.integers(36, 72, m), "hwPtUnconstrained": np.zeros(m, int), "hwDXY": np.zeros(m, int),
    }  # fmt: skip
    muons["chargeValid"] = muons["charge"] != 0
    record = np.repeat(np.arange(n), counts)
    muons["slot"] = np.where(rng.random(m) < 0.5, 1, 2)
    order = np.lexsort((muons["slot"], record))
    muons = {k: v[order] for k, v in muons.items()}
    orbit = np.sort(rng.integers(1, 1 << 20, n))
    return ak.zip(
        {"run": np.full(n, 123, np.uint32), "orbit": orbit.astype(np.uint32),
         "bx": rng.integers(0, 3564, n).astype(np.uint32), "muons": ak.unflatten(ak.zip(muons), counts)},
        depth_limit=1,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["scout_000123_000000.dat", "scout_000123_000001.dat.bz2", "run3.raw"])
def test_scouting_raw_refit(refit_model, tmp_path, name):
    model, onnx_path = refit_model
    records = _scouting_records(np.random.default_rng(5), 1500)
    raw = tmp_path / name
    if name.endswith(".raw"):
        scouting.write_run3(raw, records, run=123, lumi=1)
    else:
        scouting.write_run2(raw, records)
    out_path = tmp_path / "scout.parquet"
    counts = refit_file(onnx_path, raw, out_path, chunk_size=300)  # 4 KiB reads: several chunks
    out = pd.read_parquet(out_path)
    n = ak.to_numpy(ak.num(records.muons))
    muons = ak.flatten(records.muons)
    assert counts["muons"] == len(out) == n.sum() and counts["chunks"] > 1
    assert counts["format"] == ("scouting-run3" if name.endswith(".raw") else "scouting-run2")
    assert list(out.columns[:4]) == ["run", "orbit", "bx", "l1_index"] and (out["run"] == 123).all()
    for column in ("orbit", "bx"):
        np.testing.assert_array_equal(out[column], np.repeat(ak.to_numpy(records[column]), n))
    for column in ("hwPt", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual", "tfMuonIndex"):
        np.testing.assert_array_equal(out[column], ak.to_numpy(muons[column]))
    np.testing.assert_array_equal(out["l1_pt"], scales.hw_to_pt(out["hwPt"], convention="scouting"))
    np.testing.assert_array_equal(out["l1_phi"], scales.hw_to_phi(out["hwPhiAtVtx"], convention="scouting"))
    _assert_refit_equals(out, _expected_from_hardware(model, out))


# ---------------------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("content", [b"not a model at all\n", b"PAR1" + bytes(100)])
def test_non_onnx_model_is_an_error_naming_it(skim_file, tmp_path, content):
    bad = tmp_path / "notamodel.onnx"
    bad.write_bytes(content)
    with pytest.raises(L1RefitError, match="notamodel.onnx"):
        refit_file(bad, skim_file, tmp_path / "out.parquet")
    with pytest.raises(RefitError, match="not an"):
        load_model(skim_file)  # a Parquet file as the model
    assert not (tmp_path / "out.parquet").exists()


def test_onnx_graph_that_is_no_l1refit_export(skim_file, tmp_path):
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node], "g", [tensor("x", onnx.TensorProto.FLOAT, [None, 4])], [tensor("y", onnx.TensorProto.FLOAT, [None, 4])]
    )
    other = tmp_path / "other.onnx"
    opset = [onnx.helper.make_opsetid("", 18)]
    onnx.save_model(onnx.helper.make_model(graph, opset_imports=opset, ir_version=10), other)  # onnxruntime: IR <= 13
    with pytest.raises(RefitError, match=r"other\.onnx: not an l1refit export"):
        refit_file(other, skim_file, tmp_path / "out.parquet")


@pytest.mark.parametrize("shape", [[None, "width"], [None, None], ["batch"]])
def test_model_without_a_fixed_input_width_is_a_one_line_error(skim_file, tmp_path, shape, capsys):
    """A graph whose input width is dynamic would fail deep inside onnxruntime: it is refused when opened."""
    tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["hw"], ["corrected"])], "g",
        [tensor("hw", onnx.TensorProto.FLOAT, shape)], [tensor("corrected", onnx.TensorProto.FLOAT, shape)],
    )  # fmt: skip
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], ir_version=10)
    onnx.helper.set_model_props(model, {"inputs": '["hwPhiAtVtx", "hwEtaAtVtx", "hwPt", "charge"]'})
    path = tmp_path / "dynamic.onnx"
    onnx.save_model(model, path)
    with pytest.raises(RefitError, match=r"dynamic\.onnx: input 'hw' has shape .*fixed width of 4 columns"):
        load_model(path)
    assert main(["refit", "--model", str(path), str(skim_file), str(tmp_path / "out.parquet")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("l1refit: error: ")]
    assert len(errors) == 1 and "fixed width" in errors[0] and "Traceback" not in err
    assert not (tmp_path / "out.parquet").exists()


def test_missing_model_input_column_names_it_the_model_and_the_input(refit_model, tmp_path):
    _, onnx_path = refit_model
    src = tmp_path / "nocharge.parquet"
    _toy_skim(100).drop(columns=["charge"]).to_parquet(src)
    with pytest.raises(RefitError, match=r"nocharge\.parquet.*lacks the column\(s\) charge.*m\.onnx"):
        refit_file(onnx_path, src, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_unknown_input_format_and_wrong_format(refit_model, skim_file, tmp_path):
    _, onnx_path = refit_model
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is no event file\n" * 10)
    with pytest.raises(FormatError, match=r"notes\.txt.*unknown input format"):
        refit_file(onnx_path, text, tmp_path / "out.parquet")
    with pytest.raises(FormatError, match="is a parquet file, but the format 'l1ntuple' was expected"):
        refit_file(onnx_path, skim_file, tmp_path / "out.parquet", fmt="l1ntuple")
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        refit_file(onnx_path, tmp_path / "missing.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_failing_run_leaves_no_output_and_keeps_an_old_one(refit_model, skim_file, tmp_path, monkeypatch):
    _, onnx_path = refit_model

    def stop_after_first_chunk(message, *args):
        if ": chunk " in str(message):  # the first chunk's log line, after its write was handed to the writer
            raise KeyboardInterrupt("interrupted")

    monkeypatch.setattr(refit.log, "info", stop_after_first_chunk)
    out = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        refit_file(onnx_path, skim_file, out, chunk_size=500)
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file
    assert not [t for t in threading.enumerate() if t.name.startswith(("l1refit-reader", "l1refit-writer"))]
    out.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        refit_file(onnx_path, skim_file, out, chunk_size=500)
    assert out.read_bytes() == b"old" and list(tmp_path.iterdir()) == [out]


def test_output_may_not_overwrite_the_input(refit_model, skim_file):
    _, onnx_path = refit_model
    with pytest.raises(RefitError, match="overwrite"):
        refit_file(onnx_path, skim_file, skim_file)


# ---------------------------------------------------------------------------------------------------------------
# command line


def test_cli_refit_and_its_errors(refit_model, skim_file, tmp_path, capsys, caplog):
    _, onnx_path = refit_model
    out = tmp_path / "out.parquet"
    caplog.set_level(logging.INFO, logger="l1refit")
    assert main(["refit", "--model", str(onnx_path), str(skim_file), str(out), "--chunk-size", "1000",
                 "--threads", "2", "--format", "parquet"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "muons: 2500, chunks: 3" in captured.out and "chunk 3: 500 muons" in caplog.text
    assert pq.read_metadata(out).num_rows == 2500

    bad = tmp_path / "bad.onnx"
    bad.write_text("junk")
    assert main(["refit", "--model", str(bad), str(skim_file), str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("l1refit: error: ") and "bad.onnx" in err and "not an ONNX model" in err
    assert not (tmp_path / "x.parquet").exists()
