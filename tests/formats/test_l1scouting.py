"""CMSSW L1 scouting files: the EDM fixtures written by CMSSW and synthetic L1 scouting NanoAOD (formats/l1scouting)."""

import json

import awkward as ak
import numpy as np
import pytest
import uproot

from l1refit import scales
from l1refit.cli import main
from l1refit.errors import FormatError
from l1refit.formats import l1scouting, l1scouting_write
from l1refit.formats.inventory import inspect_file
from l1refit.formats.registry import detect_format

MUON_BRANCH = "l1ScoutingRun3MuonOrbitCollection_l1ScoutingTestProducer__PROD."


def test_fixtures_are_present_and_detected(cmssw_ntuple, l1scouting_edm):
    SPLIT99, SPLIT0 = l1scouting_edm
    assert SPLIT99.is_file() and SPLIT0.is_file() and (SPLIT0.parent / "README.md").is_file()
    assert detect_format(SPLIT99) == detect_format(SPLIT0) == "l1scouting-edm"
    assert detect_format(cmssw_ntuple) == "l1ntuple"


def test_split99_fixture_values(l1scouting_edm):
    SPLIT99, SPLIT0 = l1scouting_edm
    rows = next(l1scouting.iterate(SPLIT99, "l1scouting-edm", 10))
    np.testing.assert_array_equal(rows["bx"], [42, 42, 42, 512, 512, 512])
    np.testing.assert_array_equal(rows["l1_index"], [0, 1, 2, 0, 1, 2])
    assert set(rows["run"]) == set(rows["lumi"]) == set(rows["orbit"]) == {1}  # EventAuxiliary id_: event = orbit
    for name in set(l1scouting.EDM_MEMBERS) - {"chargeValid"}:  # the test producer fills every member 1, 2, 3
        np.testing.assert_array_equal(rows[name], [1, 2, 3, 1, 2, 3], err_msg=name)
    assert rows["chargeValid"].all() and (rows["charge"] == 1).all()
    np.testing.assert_array_equal(rows["pt"], scales.hw_to_pt(rows["hwPt"], "scouting"))
    np.testing.assert_array_equal(rows["phiAtVtx"], scales.hw_to_phi(rows["hwPhiAtVtx"], "scouting"))
    assert rows["hwPt"].dtype == np.int16 and rows["orbit"].dtype == np.uint32


def test_bx_of_muons_over_several_orbits():
    n_bx = l1scouting.N_BX_OFFSETS - 1
    per_orbit = [{3: 2, 7: 1}, {}, {0: 1, 3564: 3}]  # BX -> muon count; the second orbit is empty
    offsets, counts = [], []
    for orbit in per_orbit:
        n = np.zeros(n_bx, np.int64)
        n[list(orbit)] = list(orbit.values())
        offsets.append(np.r_[0, np.cumsum(n)])
        counts.append(n.sum())
    bx, index = l1scouting.bx_of_muons("x.root", np.concatenate(offsets), np.full(3, n_bx + 1), np.array(counts))
    np.testing.assert_array_equal(bx, [3, 3, 7, 0, 3564, 3564, 3564])
    np.testing.assert_array_equal(index, [0, 1, 0, 0, 0, 1, 2])
    bad = np.concatenate(offsets)
    bad[5] = 9
    with pytest.raises(FormatError, match=r"x\.root \(branch 'bxOffsets_'\): bxOffsets_ is not"):
        l1scouting.bx_of_muons("x.root", bad, np.full(3, n_bx + 1), np.array(counts))


def test_inspect_split99_via_cli(capsys, l1scouting_edm):
    SPLIT99, SPLIT0 = l1scouting_edm
    assert main(["inspect", str(SPLIT99)]) == 0
    out = capsys.readouterr().out
    assert "l1scouting-edm" in out and "muons       6" in out and "BXs         2 with muons" in out
    assert "orbit 1 bx 42: hwPt=1" in out and MUON_BRANCH in out
    assert main(["inspect", "--json", "--format", "l1scouting-edm", str(SPLIT99)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["n_orbits"], summary["n_bx"], summary["n_muons"], summary["runs"]) == (1, 2, 6, [1])


def test_split0_is_one_clear_line(capsys, l1scouting_edm):
    SPLIT99, SPLIT0 = l1scouting_edm
    assert main(["inspect", str(SPLIT0)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and SPLIT0.name in err[0] and f"{MUON_BRANCH}obj" in err[0]
    assert "split level 0" in err[0] and "split level 99" in err[0] and "NanoAOD" in err[0]


def test_root_files_without_muons_name_the_file(tmp_path, capsys):
    edm = tmp_path / "no_muons.root"
    with uproot.recreate(edm) as file:
        file["Events"] = {"EventAuxiliary": np.arange(3, dtype=np.int32)}
    nano = tmp_path / "no_l1mu.root"
    with uproot.recreate(nano) as file:
        file["Events"] = {"orbitNumber": np.arange(3, dtype=np.uint32), "bunchCrossing": np.ones(3, np.uint16)}
    assert detect_format(edm) == "l1scouting-edm" and detect_format(nano) == "l1scouting-nano"
    for path, what in ((edm, "no OrbitCollection<l1ScoutingRun3::Muon> branch"), (nano, "branch 'nL1Mu'")):
        assert main(["inspect", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0] and what in err[0]


@pytest.mark.parametrize("hardware", [True, False])
def test_synthetic_nano_round_trip(tmp_path, hardware, l1scouting_rows):
    rows = l1scouting_rows(3000, seed=3)
    path = tmp_path / "scout_nano.root"
    l1scouting.write_nano(path, rows, hardware=hardware)
    names = set(uproot.open(path)["Events"].keys())
    assert {"nL1Mu", "L1Mu_pt", "orbitNumber", "bunchCrossing"} <= names and ("L1Mu_hwPt" in names) == hardware
    assert detect_format(path) == "l1scouting-nano"
    chunks = list(l1scouting.iterate(path, "l1scouting-nano", 500))
    assert len(chunks) > 1
    got = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    for name in (*l1scouting.NANO_FROM_FLOAT, "hwQual", "tfMuonIndex", "hwDXY", "orbit", "bx", "run", "lumi"):
        np.testing.assert_array_equal(got[name], rows[name], err_msg=name)
    np.testing.assert_array_equal(got["charge"], rows["hwCharge"])
    summary = inspect_file(path)
    n_bx = len(set(zip(rows["orbit"].tolist(), rows["bx"].tolist(), strict=True)))
    assert (summary["n_muons"], summary["n_bx"], summary["n_entries"]) == (3000, n_bx, n_bx)
    assert summary["n_orbits"] == len(np.unique(rows["orbit"]))


def test_nano_float_off_the_grid_names_branch_and_value(tmp_path, l1scouting_rows):
    path = tmp_path / "central.root"
    l1scouting.write_nano(path, l1scouting_rows(100), hardware=False)
    events = uproot.open(path)["Events"].arrays(how=dict)
    muons = ak.zip({k.removeprefix("L1Mu_"): v for k, v in events.items() if k.startswith("L1Mu_")})
    muons["eta"] = muons["eta"] + np.float32(0.001)  # not a multiple of 0.010875
    bad = tmp_path / "bad.root"
    flat = {k: ak.to_numpy(v) for k, v in events.items() if not k.startswith(("L1Mu_", "nL1Mu"))}
    l1scouting_write.write_events(bad, flat | {"L1Mu": muons})
    with pytest.raises(FormatError, match=r"bad\.root \(branch 'L1Mu_eta'\): value .* is not on the hardware grid"):
        next(l1scouting.iterate(bad, "l1scouting-nano", 1000))


@pytest.mark.parametrize("hardware", [True, False])
def test_reading_some_columns_reads_only_their_branches(tmp_path, hardware, l1scouting_rows):
    rows = l1scouting_rows(800, seed=5)
    path = tmp_path / "nano.root"
    l1scouting.write_nano(path, rows, hardware=hardware)
    full = next(l1scouting.iterate(path, "l1scouting-nano", 10_000))
    some = next(l1scouting.iterate(path, "l1scouting-nano", 10_000, columns=["hwPt", "charge", "phiAtVtx"]))
    assert set(some) == {*l1scouting.IDENTITY, "hwPt", "hwCharge", "charge", "chargeValid", "hwPhiAtVtx", "phiAtVtx",
                         l1scouting.ENTRY_COUNTS}  # fmt: skip
    for name in some:
        np.testing.assert_array_equal(some[name], full[name], err_msg=name)
    np.testing.assert_array_equal(full[l1scouting.ENTRY_COUNTS], uproot.open(path)["Events"]["nL1Mu"].array())


def test_nano_writer_in_chunks_with_empty_entries_and_compression(tmp_path, l1scouting_rows):
    rows = l1scouting_rows(300, seed=8)
    counts = np.array([0, 100, 0, 0, 150, 50])
    entries = {"run": np.full(6, 7), "lumi": np.arange(6), "orbit": np.arange(6) + 10, "bx": np.full(6, 3)}
    path = tmp_path / "chunks.root"
    with l1scouting_write.NanoWriter(path, compression=uproot.LZMA(1)) as writer:
        writer.extend({k: v[:3] for k, v in entries.items()}, {k: v[:100] for k, v in rows.items()}, counts[:3])
        writer.extend({k: v[3:] for k, v in entries.items()}, {k: v[100:] for k, v in rows.items()}, counts[3:])
    assert (writer.n_entries, writer.n_muons) == (6, 300)
    assert uproot.open(path).file.compression == uproot.LZMA(1)
    back = next(l1scouting.iterate(path, "l1scouting-nano", 4))  # a chunk of 4 entries: 100 muons
    np.testing.assert_array_equal(back[l1scouting.ENTRY_COUNTS], [0, 100, 0, 0])
    np.testing.assert_array_equal(back["hwPt"], rows["hwPt"][:100])
    np.testing.assert_array_equal(back["lumi"], np.full(100, 1))
