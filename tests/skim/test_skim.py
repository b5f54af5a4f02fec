"""l1refit.skim: selection, one-to-one station-2 matching, cutflow and files, on hand-built truth and the fixture."""

from __future__ import annotations

import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from l1refit import scales
from l1refit.errors import ConfigError, FormatError
from l1refit.formats import l1ntuple, scouting
from l1refit.formats.registry import SCOUTING_FORMATS
from l1refit.skim import files
from l1refit.skim.chunk import columns
from l1refit.skim.cutflow import SCOUTING_NOTE, read_cutflow
from l1refit.skim.files import merge_skims, skim_file
from l1refit.skim.matching import match
from l1refit.skim.selection import Selection, select_l1, select_offline

FIRST_EVENT = 1000


# ---------------------------------------------------------------------------------------------------------------
# a hand-built L1Ntuple with known truth


def l1mu(hw_eta: int, hw_phi: int, *, hw_pt: int = 21, qual: int = 12, tf: int = 40, bx: int = 0) -> dict:
    """An L1 muon given by its hardware integers (the writer derives the floats; hwPt 21 = 10 GeV)."""
    return {
        "hwPt": hw_pt, "hwEta": hw_eta, "hwPhi": hw_phi, "hwEtaAtVtx": hw_eta, "hwPhiAtVtx": (hw_phi + 7) % 576,
        "charge": -1, "hwQual": qual, "tfMuonIndex": tf, "bx": bx,
    }  # fmt: skip


def station2(mu: dict) -> tuple[float, float]:
    """Where the file puts an L1 muon at station 2: the CMSSW floats, stored as float32."""
    eta = np.float32(scales.hw_to_eta(mu["hwEta"], convention="cmssw"))
    phi = np.float32(scales.hw_to_phi(mu["hwPhi"], convention="cmssw"))
    return float(eta), float(phi)


def reco(
    near: dict | None = None,
    deta: float = 0.0,
    dphi: float = 0.0,
    *,
    at: tuple[float, float] | None = None,
    tight: bool = True,
    invalid: bool = False,
) -> dict:
    """An offline muon at station 2 ``(deta, dphi)`` away from the L1 muon ``near`` (or at ``at``)."""
    eta, phi = station2(near) if near is not None else at
    eta_st2, phi_st2 = eta + deta, float(scales.wrap_phi(phi + dphi))
    if invalid:
        eta_st2 = phi_st2 = l1ntuple.STATION_INVALID
    return {
        "pt": 9.0, "eta": eta, "phi": float(scales.wrap_phi(phi - 0.05)), "charge": -1,
        "etaSt2": eta_st2, "phiSt2": phi_st2,
        "isLooseMuon": True, "isMediumMuon": True, "isTightMuon": tight, "iso": 0.01,
    }  # fmt: skip


def hand_built() -> tuple[list[tuple[list[dict], list[dict]]], set[tuple[int, int, int]]]:
    """Events (L1 muons, offline muons) and the expected matched pairs (event, l1_index, reco_index)."""
    events, pairs = [], set()

    def add(l1: list[dict], off: list[dict], *expected: tuple[int, int]) -> None:
        pairs.update((FIRST_EVENT + len(events), i, j) for i, j in expected)
        events.append((l1, off))

    a = l1mu(40, 100)  # a clean match
    add([a], [reco(a, 0.01, 0.01)], (0, 0))
    a, b = l1mu(10, 50, tf=36), l1mu(-30, 300, tf=71)  # two pairs, offline order swapped; BMTF edges 36 and 71
    add([a, b], [reco(b, 0.0, 0.02), reco(a, 0.02, 0.0)], (0, 1), (1, 0))
    a = l1mu(20, 200, bx=1)  # out-of-time L1 muons right on an offline muon: dropped
    add([a, l1mu(20, 200, bx=-1)], [reco(a)])
    a = l1mu(60, 150, tf=5)  # EMTF+, EMTF-, OMTF+, OMTF- and both neighbours of the BMTF range: dropped
    add([a] + [l1mu(60, 150, tf=tf) for tf in (100, 20, 80, 35, 72)], [reco(a)])
    a = l1mu(0, 400, qual=8)  # below the quality cut: dropped
    add([a, l1mu(0, 400, qual=11)], [reco(a)])
    edges = [l1mu(-50, 10, hw_pt=6), l1mu(-20, 60, hw_pt=91), l1mu(10, 110, hw_pt=7), l1mu(40, 160, hw_pt=90)]
    add(edges, [reco(mu) for mu in edges], (2, 2), (3, 3))  # 2.5 and 45 GeV excluded, 3 and 44.5 kept
    a = l1mu(30, 250)  # offline propagation failed (-9999)
    add([a], [reco(a, invalid=True)])
    add([a], [reco(a, tight=False)])  # offline muon not tight
    a, b = l1mu(0, 500), l1mu(4, 500)  # two L1 muons for one offline muon: the closer (b) wins
    add([a, b], [reco(a, 0.05)], (1, 0))
    a, b = l1mu(0, 287), l1mu(40, 289)  # phi wrap-around: L1 at +3.1306 / -3.1308, offline at -3.13 / +3.13
    add([a, b], [reco(at=(station2(a)[0], -3.13)), reco(at=(station2(b)[0], 3.13))], (0, 0), (1, 1))
    edge = [l1mu(-40, 30), l1mu(40, 330), l1mu(0, 450), l1mu(0, 100)]  # dR2 0.0099 in, 0.0101 out (eta and phi)
    add(edge, [reco(edge[0], 0.0995), reco(edge[1], 0.1005), reco(edge[2], 0, 0.0995), reco(edge[3], 0, -0.1005)],
        (0, 0), (2, 2))  # fmt: skip
    a, b = l1mu(0, 200), l1mu(8, 200)  # greedy: (a, y) at 0.0009 first, so b (0.0033 to y) and x stay unmatched
    add([a, b], [reco(a, -0.05), reco(a, 0.03)], (0, 1))
    add([], [])  # an empty event
    add([], [reco(at=(1.0, 1.0))])  # an offline muon outside the BMTF acceptance, no L1 muon
    add([l1mu(20, 20)], [])  # an L1 muon, no offline muon
    a = l1mu(0, 100)  # back to back: no match, but one with the offline phi turned by pi (the fake-rate probe)
    add([a], [reco(a, 0.0, math.pi + 0.01)])
    return events, pairs


EXPECTED_CUTFLOW = {  # counted by hand from hand_built()
    "events": 16,
    "l1_all": 31,
    "l1_bx": 29,  # - 2 out of time
    "l1_barrel": 23,  # - 6 outside tfMuonIndex 36..71
    "l1_quality": 21,  # - 2 below quality 12
    "l1_pt": 19,  # - pT 2.5 and 45 GeV
    "offline_all": 23,
    "offline_st2_valid": 22,  # - the -9999 one
    "offline_id": 21,  # - the non-tight one
    "offline_pt": 21,
    "offline_barrel": 20,  # - the one at eta 1.0
    "matched_pairs": 11,
    "events_matched": 7,
    "match_efficiency": 11,
    "fake_match_rate": 1,
}


def write_hand_built(path: Path) -> set[tuple[int, int, int]]:
    events, pairs = hand_built()
    n = len(events)
    l1ntuple.write(
        path,
        {
            "run": np.full(n, 325000, np.uint32),
            "lumi": np.ones(n, np.uint32),
            "event": np.arange(FIRST_EVENT, FIRST_EVENT + n, dtype=np.uint64),
            "L1Mu": ak.Array([l1 for l1, _ in events]),
            "Muon": ak.Array([off for _, off in events]),
        },
    )
    return pairs


@pytest.fixture(scope="module")
def hand_file(tmp_path_factory) -> tuple[Path, set[tuple[int, int, int]]]:
    path = tmp_path_factory.mktemp("hand") / "hand.root"
    return path, write_hand_built(path)


def run_skim(path: Path, out: Path, fmt: str = "l1ntuple", **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    selection = kwargs.pop("selection", None)
    skim_file(path, fmt, selection, out / "skim.parquet", out / "cutflow.csv", **kwargs)
    return pd.read_parquet(out / "skim.parquet"), read_cutflow(out / "cutflow.csv")


def found_pairs(table: pd.DataFrame) -> set[tuple[int, int, int]]:
    return set(zip(table["event"].astype(int), table["l1_index"].astype(int), table["reco_index"].astype(int),
                   strict=True))  # fmt: skip


def counts(cutflow: pd.DataFrame) -> dict[str, int]:
    return dict(zip(cutflow["step"], cutflow["count"].astype(int), strict=True))


# ---------------------------------------------------------------------------------------------------------------
# hand-built truth


def test_hand_built_pairs_and_cutflow(hand_file, tmp_path):
    path, expected = hand_file
    table, cutflow = run_skim(path, tmp_path)
    assert found_pairs(table) == expected
    assert counts(cutflow) == EXPECTED_CUTFLOW
    fraction = dict(zip(cutflow["step"], cutflow["fraction"], strict=True))
    assert fraction["match_efficiency"] == pytest.approx(11 / 20)
    assert fraction["fake_match_rate"] == pytest.approx(1 / 11)
    assert fraction["l1_pt"] == pytest.approx(19 / 21)
    assert np.isnan(fraction["events"])


def test_table_columns_and_values(hand_file, tmp_path):
    path, _ = hand_file
    table, _ = run_skim(path, tmp_path, part=3)
    assert {c: table[c].dtype for c in table.columns} == columns()
    metadata = pq.read_schema(tmp_path / "skim.parquet").metadata
    assert metadata[b"l1refit.format"] == b"l1ntuple"
    assert json.loads(metadata[b"l1refit.selection"])["min_quality"] == 12
    first = table.iloc[0]  # event 0: the clean match
    a = l1mu(40, 100)
    assert (first["run"], first["lumi"], first["event"], first["part"], first["entry"]) == (325000, 1, 1000, 3, 0)
    hw = ("hwPt", "hwEta", "hwPhi", "hwPhiAtVtx", "hwQual", "tfMuonIndex", "charge")
    assert tuple(first[list(hw)]) == (21, 40, 100, 107, 12, 40, -1)
    assert (first["l1_etaSt2"], first["l1_phiSt2"]) == pytest.approx(station2(a))
    assert first["l1_pt"] == 10.0
    assert first["l1_phi"] == pytest.approx(scales.hw_to_phi(107), abs=1e-6)
    assert first["reco_etaSt2"] == pytest.approx(station2(a)[0] + 0.01, abs=1e-6)
    assert first["dr2"] == pytest.approx(2e-4, rel=1e-3)
    wrap = table[table["event"] == 1009].sort_values("l1_index")
    assert wrap["dr2"].to_numpy() == pytest.approx([0.0226**2, 0.0224**2], rel=0.02)
    assert (table["dr2"] < 0.01).all()
    assert table[["part", "entry", "l1_index"]].duplicated().sum() == 0


def test_selection_keys_change_the_result(hand_file, tmp_path):
    path, expected = hand_file
    table, cutflow = run_skim(path, tmp_path, selection={"min_quality": 0, "offline_id": "medium"})
    # the two equally close low-quality muons tie: the lower L1 index wins; the non-tight muon now matches
    assert found_pairs(table) == expected | {(1004, 0, 0), (1007, 0, 0)}
    assert counts(cutflow)["offline_id"] == 22
    table, _ = run_skim(path, tmp_path, selection={"l1_pt": [2.0, 50.0], "match_dr2": 0.0102, "bx": 1})
    assert found_pairs(table) == {(1002, 0, 0)}
    table, _ = run_skim(path, tmp_path, selection={"tf_muon_index": [0, 107], "bx": 0, "min_quality": 12})
    assert (1003, 0, 0) in found_pairs(table)


def test_selection_from_config_rejects_bad_keys_and_values():
    default = Selection.from_config(None)  # the schema's defaults: the paper's cuts
    cuts = (default.tf_muon_index, default.l1_pt, default.match_dr2, default.min_quality)
    assert cuts == ((36, 71), (2.5, 45.0), 0.01, 12)
    assert Selection.from_config({"l1_pt": [3, 40]}).l1_pt == (3, 40)
    with pytest.raises(ConfigError, match="selection.min_qualty"):
        Selection.from_config({"min_qualty": 8})
    with pytest.raises(ConfigError, match="offline_id"):
        Selection.from_config({"offline_id": "tightest"})
    with pytest.raises(ConfigError, match="l1_pt"):
        Selection.from_config({"l1_pt": [45.0, 2.5]})


def test_match_public_api_agrees_with_the_skim(hand_file):
    path, expected = hand_file
    events = l1ntuple.read(path)
    sel = Selection.from_config(None)
    l1, offline = select_l1(events, sel), select_offline(events, sel)
    matched = match(l1.muons, offline.muons, sel.match_dr2)
    assert ak.to_list(ak.num(matched)) == [1, 2, 0, 0, 0, 2, 0, 0, 1, 2, 2, 1, 0, 0, 0, 0]
    l1_index, reco_index = l1.index[matched.l1], offline.index[matched.reco]
    event = ak.broadcast_arrays(events.event, matched.l1)[0]
    got = zip(*(ak.to_list(ak.flatten(x)) for x in (event, l1_index, reco_index)), strict=True)
    assert set(got) == expected
    # without any selection the out-of-time muon right on the offline muon matches (match knows no cuts)
    assert ak.to_list(match(events.L1Mu, events.Muon, 0.01)[2].l1) == [0]


# ---------------------------------------------------------------------------------------------------------------
# the CMSSW-layout fixture against its truth tables


def reference_pairs(events: ak.Array, sel: Selection) -> set[tuple[int, int, int]]:
    """A plain-Python greedy matcher (loops everywhere): the oracle for the vectorised one."""
    found = set()
    lo, hi = sel.tf_muon_index
    for ev in ak.to_list(events):
        l1 = [(i, m) for i, m in enumerate(ev["L1Mu"]) if m["bx"] == sel.bx and lo <= m["tfMuonIndex"] <= hi
              and m["hwQual"] >= sel.min_quality and sel.l1_pt[0] < m["pt"] < sel.l1_pt[1]]  # fmt: skip
        off = [(j, m) for j, m in enumerate(ev["Muon"]) if m["etaSt2"] != -9999 and m["isTightMuon"]]
        candidates = []
        for i, m in l1:
            for j, o in off:
                dphi = (m["phiSt2"] - o["phiSt2"] + math.pi) % (2 * math.pi) - math.pi
                dr2 = (m["etaSt2"] - o["etaSt2"]) ** 2 + dphi**2
                if dr2 < sel.match_dr2:
                    candidates.append((dr2, i, j))
        used_l1, used_off = set(), set()
        for _, i, j in sorted(candidates):
            if i not in used_l1 and j not in used_off:
                used_l1.add(i)
                used_off.add(j)
                found.add((ev["event"], i, j))
    return found


def test_fixture_against_truth(cmssw_ntuple, tmp_path):
    truth = pd.read_csv(cmssw_ntuple.parent / "truth.csv")
    offline_truth = pd.read_csv(cmssw_ntuple.parent / "offline_truth.csv")
    table, cutflow = run_skim(cmssw_ntuple, tmp_path)
    got = counts(cutflow)

    pt = (truth["hwPt"] - 1) * 0.5
    in_time = truth["bx"] == 0
    barrel = in_time & truth["tfMuonIdx"].between(36, 71)
    quality = barrel & (truth["hwQual"] >= 12)
    assert got["events"] == 1000
    assert [got[s] for s in ("l1_all", "l1_bx", "l1_barrel", "l1_quality", "l1_pt")] == [
        len(truth), in_time.sum(), barrel.sum(), quality.sum(), (quality & (pt > 2.5) & (pt < 45)).sum()
    ]  # fmt: skip
    valid = offline_truth["st_propagation_failed"] == 0
    tight = ak.to_numpy(ak.flatten(l1ntuple.read(cmssw_ntuple).Muon.isTightMuon))
    assert [got[s] for s in ("offline_all", "offline_st2_valid", "offline_id")] == [
        len(offline_truth), valid.sum(), (valid & tight).sum()
    ]  # fmt: skip

    # every pair is one that truth made (right L1, right offline muon), and the oracle finds exactly these
    source = truth.set_index(["event", "l1_index"])["offline_index"]
    keys = list(zip(table["event"].astype(int), table["l1_index"].astype(int), strict=True))
    assert (source.loc[keys].to_numpy() == table["reco_index"].to_numpy()).all()
    assert found_pairs(table) == reference_pairs(l1ntuple.read(cmssw_ntuple), Selection.from_config(None))
    assert got["matched_pairs"] == len(table) > 300
    assert got["fake_match_rate"] / got["matched_pairs"] < 0.02
    assert 0.5 < got["match_efficiency"] / got["offline_barrel"] <= 1


def test_chunked_equals_unchunked(cmssw_ntuple, tmp_path):
    whole, whole_cutflow = run_skim(cmssw_ntuple, tmp_path / "whole", step_size=100_000)
    chunked, chunked_cutflow = run_skim(cmssw_ntuple, tmp_path / "chunked", step_size=37)
    pd.testing.assert_frame_equal(whole, chunked)
    pd.testing.assert_frame_equal(whole_cutflow, chunked_cutflow)
    assert pq.ParquetFile(tmp_path / "chunked" / "skim.parquet").num_row_groups > 20


def test_file_without_events(tmp_path):
    with l1ntuple.Writer(tmp_path / "empty.root"):
        pass
    table, cutflow = run_skim(tmp_path / "empty.root", tmp_path)
    assert table.empty and list(table.columns) == list(columns())
    assert not cutflow["count"].any() and cutflow["fraction"].isna().all()


# ---------------------------------------------------------------------------------------------------------------
# scouting input: no offline muons, the L1 table


def scouting_records() -> ak.Array:
    """Three BX records: a kept barrel muon, then muons each failing one cut, then a second kept one."""
    muons = [
        [{"hwPt": 21, "hwQual": 12, "tfMuonIndex": 40}, {"hwPt": 21, "hwQual": 12, "tfMuonIndex": 95}],
        [{"hwPt": 6, "hwQual": 13, "tfMuonIndex": 50}, {"hwPt": 30, "hwQual": 4, "tfMuonIndex": 51}],
        [{"hwPt": 41, "hwQual": 15, "tfMuonIndex": 71}],
    ]
    base = {"hwEta": 12, "hwPhi": 100, "hwEtaAtVtx": 13, "hwPhiAtVtx": 110, "charge": 1, "chargeValid": True,
            "hwIso": 0, "hwPtUnconstrained": 0, "hwDXY": 0, "slot": 1}  # fmt: skip
    return ak.Array(
        {"run": [7, 7, 7], "orbit": [5, 5, 6], "bx": [100, 200, 300],
         "muons": [[base | m for m in record] for record in muons]}
    )  # fmt: skip


@pytest.mark.parametrize("fmt", SCOUTING_FORMATS)
def test_scouting_gives_the_l1_table_and_says_so(tmp_path, fmt):
    path = tmp_path / "scout_000007_000000.dat"
    if fmt == "scouting-run2":
        scouting.write_run2(path, scouting_records())
    else:
        scouting.write_run3(path, scouting_records(), run=7, lumi=1)
    table, cutflow = run_skim(path, tmp_path, fmt=fmt, chunk_bytes=64)
    assert {c: table[c].dtype for c in table.columns} == columns(l1_only=True)
    assert "reco_pt" not in table and "dr2" not in table
    assert table[["orbit", "bx", "l1_index", "hwPt"]].values.tolist() == [[5, 100, 0, 21], [6, 300, 0, 41]]
    assert table["l1_pt"].tolist() == [10.0, 20.0]
    got = counts(cutflow)
    assert [got[s] for s in ("events", "l1_all", "l1_bx", "l1_barrel", "l1_quality", "l1_pt")] == [3, 5, 5, 4, 3, 2]
    assert got["offline_all"] == got["matched_pairs"] == 0
    notes = cutflow.set_index("step")["description"]
    assert notes["offline_all"] == notes["matched_pairs"] == SCOUTING_NOTE


# ---------------------------------------------------------------------------------------------------------------
# merge


def test_merge_concatenates_and_sums(hand_file, tmp_path):
    path, _ = hand_file
    parts, cutflows = [], []
    for k in range(2):
        parts.append(tmp_path / f"{k}.parquet")
        cutflows.append(tmp_path / f"{k}.csv")
        skim_file(path, "l1ntuple", None, parts[-1], cutflows[-1], part=k)
    merged = merge_skims(parts, tmp_path / "all.parquet", cutflows, tmp_path / "all.csv")
    table = pd.read_parquet(tmp_path / "all.parquet")
    assert len(table) == 2 * EXPECTED_CUTFLOW["matched_pairs"]
    assert table.groupby("part").size().tolist() == [11, 11]
    assert counts(read_cutflow(tmp_path / "all.csv")) == {k: 2 * v for k, v in EXPECTED_CUTFLOW.items()}
    assert merged.set_index("step").loc["match_efficiency", "fraction"] == pytest.approx(11 / 20)


@pytest.mark.parametrize("other", ["scouting", "selection"])
def test_merge_refuses_parts_of_another_kind(hand_file, tmp_path, other):
    path, _ = hand_file
    skim_file(path, "l1ntuple", None, tmp_path / "a.parquet", tmp_path / "a.csv")
    if other == "scouting":
        scout = tmp_path / "scout_000007_000000.dat"
        scouting.write_run2(scout, scouting_records())
        skim_file(scout, "scouting-run2", None, tmp_path / "b.parquet", tmp_path / "b.csv")
    else:
        skim_file(path, "l1ntuple", {"min_quality": 8}, tmp_path / "b.parquet", tmp_path / "b.csv")
    with pytest.raises(FormatError, match="b.parquet"):
        merge_skims([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "m.parquet",
                   [tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "m.csv")  # fmt: skip
    assert not (tmp_path / "m.parquet").exists() and not (tmp_path / "m.csv").exists()


# ---------------------------------------------------------------------------------------------------------------
# errors: one clear message naming the file, nothing half-written


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.root"
    with pytest.raises(FileNotFoundError, match="nope.root"):
        run_skim(missing, tmp_path)
    assert not list(tmp_path.iterdir())


def test_wrong_format(hand_file, tmp_path):
    path, _ = hand_file
    with pytest.raises(FormatError, match=r"hand.root.*l1ntuple file, but the format 'scouting-run3'"):
        run_skim(path, tmp_path, fmt="scouting-run3")
    text = tmp_path / "notes.root"
    text.write_text("not a ROOT file\n" * 100)
    with pytest.raises(FormatError, match="notes.root.*is not a l1ntuple file"):
        run_skim(text, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.root"]


def test_failure_midway_leaves_nothing_half_written(hand_file, tmp_path, monkeypatch):
    path, _ = hand_file
    old = tmp_path / "skim.parquet"
    old.write_bytes(b"previous")
    real, calls = files.skim_chunk, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "skim_chunk", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        run_skim(path, tmp_path, step_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["skim.parquet"]
    assert old.read_bytes() == b"previous"
