"""``l1refit convert`` with the Run-3 formats: L1 scouting EDM/NanoAOD to Parquet, L1 scouting NanoAOD out."""

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot

from l1refit.cli import main
from l1refit.errors import FormatError
from l1refit.formats import l1ntuple, l1scouting, scouting
from l1refit.formats.convert import convert
from l1refit.formats.registry import detect_format

HW = ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual", "tfMuonIndex", "hwPtUnconstrained",
      "hwDXY")  # fmt: skip


def _read_all(path, fmt):
    chunks = list(l1scouting.iterate(path, fmt, 1000))
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def test_edm_to_parquet_and_to_nano_keep_every_muon(tmp_path, l1scouting_edm):
    split99 = l1scouting_edm[0]
    edm = _read_all(split99, "l1scouting-edm")
    assert convert(split99, tmp_path / "edm.parquet") == {"muons": 6}
    table = pd.read_parquet(tmp_path / "edm.parquet")
    assert list(table.columns) == [k for k in edm if k != l1scouting.ENTRY_COUNTS]
    for name in table.columns:
        np.testing.assert_array_equal(table[name], edm[name], err_msg=name)

    nano = tmp_path / "edm_nano.root"
    counts = convert(split99, nano, to="l1scouting-nano")
    assert counts == {"entries": 2, "muons": 6, "dropped_pt0_or_qual0": 0}  # BXs 42 and 512 of orbit 1
    assert detect_format(nano) == "l1scouting-nano"
    back = _read_all(nano, "l1scouting-nano")
    np.testing.assert_array_equal(back[l1scouting.ENTRY_COUNTS], [3, 3])
    for name in (*HW, "run", "lumi", "orbit", "bx", "l1_index", "pt", "etaAtVtx", "phiAtVtx"):
        np.testing.assert_array_equal(back[name], edm[name], err_msg=name)
    assert uproot.open(nano)["Events"]["L1Mu_hwPt"].typename == "int16_t[]"  # with the hardware branches

    assert convert(nano, tmp_path / "nano.parquet") == {"muons": 6}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "nano.parquet"), table.drop(columns="hwIso"))


def test_l1ntuple_to_nano_one_entry_per_event_and_muon_bx(cmssw_ntuple, tmp_path):
    events = l1ntuple.read(cmssw_ntuple, require_offline=False)
    nano = tmp_path / "from_l1ntuple.root"
    counts = convert(cmssw_ntuple, nano, to="l1scouting-nano", step_size=300)
    mu = ak.flatten(events.L1Mu)
    n_keys = len({(e, b) for e, b in zip(np.repeat(np.arange(len(events)), ak.num(events.L1Mu)).tolist(),
                                         ak.to_numpy(mu.bx).tolist(), strict=True)})  # fmt: skip
    assert counts == {"entries": n_keys, "muons": 1225, "dropped_pt0_or_qual0": 0}
    back = _read_all(nano, "l1scouting-nano")
    owner = np.repeat(np.arange(len(events)), ak.num(events.L1Mu))
    order = np.lexsort((ak.to_numpy(mu.bx), owner))  # records: by event, then muon BX, rank order kept
    for name in HW:
        np.testing.assert_array_equal(back[name], ak.to_numpy(mu[name])[order], err_msg=name)
    np.testing.assert_array_equal(back["lumi"], ak.to_numpy(events.lumi)[owner[order]])
    np.testing.assert_array_equal(back["orbit"], ak.to_numpy(events.orbit)[owner[order]])
    np.testing.assert_array_equal(back["bx"], (ak.to_numpy(events.bx)[owner] + ak.to_numpy(mu.bx))[order])
    assert (back["run"] == 325000).all()


def test_scouting_raw_to_nano_drops_what_cmssw_drops(tmp_path, capsys):
    muons = {
        "hwPt": [1, 20, 0, 30], "hwQual": [12, 12, 12, 0], "hwEta": [0, 10, 1, 2], "hwPhi": [5, 6, 7, 8],
        "hwEtaAtVtx": [0, 9, 1, 2], "hwPhiAtVtx": [5, 8, 7, 8], "charge": [1, -1, 1, 0],
        "chargeValid": [True, True, True, False], "hwIso": [0, 0, 0, 0], "tfMuonIndex": [40, 41, 42, 43],
        "hwPtUnconstrained": [0, 0, 0, 0], "hwDXY": [0, 0, 0, 0], "slot": [1, 2, 1, 1],
    }  # fmt: skip
    records = ak.zip(
        {"run": [7, 7], "orbit": [100, 101], "bx": [200, 9], "muons": ak.unflatten(ak.zip(muons), [2, 2])},
        depth_limit=1,
    )
    raw = tmp_path / "scout_000007_000000.dat"
    scouting.write_run2(raw, records)
    kept = scouting.read(raw).muons
    n_raw = int(ak.sum(ak.num(kept)))
    nano = tmp_path / "out.root"
    assert main(["convert", "--to", "l1scouting-nano", "--lumi", "5", "--run", "9", str(raw), str(nano)]) == 0
    flat = ak.flatten(kept)
    drop = int(ak.sum((flat.hwPt == 0) | (flat.hwQual == 0)))
    assert drop >= 1 and f"muons: {n_raw - drop}, dropped_pt0_or_qual0: {drop}" in capsys.readouterr().out
    back = _read_all(nano, "l1scouting-nano")
    assert (back["hwPt"] > 0).all() and (back["hwQual"] > 0).all()
    assert set(back["lumi"]) == {5} and set(back["run"]) == {9}
    np.testing.assert_array_equal(back["hwPt"], ak.to_numpy(flat.hwPt[(flat.hwPt > 0) & (flat.hwQual > 0)]))


def test_what_convert_cannot_do_is_one_line_and_no_file(tmp_path, capsys, l1scouting_edm, l1scouting_rows):
    nano = tmp_path / "nano.root"
    l1scouting.write_nano(nano, l1scouting_rows(50))
    out = tmp_path / "out.root"
    assert main(["convert", str(nano), str(out)]) == 2  # .root means an L1Ntuple unless --to says otherwise
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"l1refit: error: {nano}: is a l1scouting-nano file, which convert writes only to parquet (a .root "
                   "output is an L1Ntuple unless --to says otherwise)")  # fmt: skip
    assert main(["convert", "--to", "l1scouting-nano", str(nano), str(out)]) == 2
    assert "already l1scouting-nano" in capsys.readouterr().err
    with pytest.raises(FormatError, match="split level 0"):
        convert(l1scouting_edm[1], out, to="l1scouting-nano")
    with pytest.raises(FormatError, match=r"is a l1scouting-edm file, which convert writes only to parquet, l1sc"):
        convert(l1scouting_edm[0], tmp_path / "x.raw")
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_nanoaod_to_parquet_and_inspect(tmp_path, capsys):
    from l1refit.config.loading import defaults
    from l1refit.simulate.events import generate_file

    nano = tmp_path / "nano.root"
    generate_file(nano, "zerobias", 400, seed=2, part=0, gen=defaults("generator"), layout="nanoaod")
    n_l1 = uproot.open(nano)["Events"]["nL1Mu"].array(library="np")
    assert convert(nano, tmp_path / "nano.parquet", step_size=150) == {"muons": n_l1.sum()}
    table = pd.read_parquet(tmp_path / "nano.parquet")
    assert {"run", "lumi", "event", "entry", "l1_index", "bx", "hwPt", "charge", "etaAtVtx"} <= set(table.columns)
    np.testing.assert_array_equal(table["entry"], np.repeat(np.arange(400), n_l1))
    assert "n_per_entry" not in table.columns
    assert main(["inspect", str(nano)]) == 0
    out = capsys.readouterr().out
    assert "format      nanoaod" in out and f"L1 muons    {n_l1.sum()} (table cut: " in out and "events      400" in out
    assert main(["convert", "--to", "l1scouting-nano", str(nano), str(tmp_path / "x.root")]) == 2
    assert "is a nanoaod file, which convert writes only to parquet" in capsys.readouterr().err
