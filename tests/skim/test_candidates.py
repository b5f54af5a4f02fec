"""The candidate table of the skim (every selected L1 muon, its neighbours, its fake label) on hand-built events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from l1refit.formats import scouting
from l1refit.skim.files import skim_file
from l1refit.skim.neighbours import ALONE_DPHI, COLUMNS, neighbour_features, wrapped_dphi
from tests.skim.test_skim import EXPECTED_CUTFLOW, found_pairs, hand_file, scouting_records  # noqa: F401 (fixture)


def test_wrapped_dphi_goes_the_short_way_round():
    assert wrapped_dphi(np.array([0, 575, 10, 0]), np.array([575, 0, 300, 288])).tolist() == [1, 1, 286, 288]


def test_neighbour_features_by_hand():
    # event 0: three muons; event 1: alone; event 2: two muons across the phi wrap; event 3: empty
    counts = np.array([3, 1, 2, 0])
    phi = np.array([100, 104, 300, 50, 575, 3])
    eta = np.array([10, 10, 10, -20, 0, 2])
    qual = np.array([15, 13, 14, 12, 13, 15])
    pt = np.array([40, 30, 20, 9, 11, 17])
    got = neighbour_features(counts, phi, eta, qual, pt)
    assert {k: v.dtype for k, v in got.items()} == COLUMNS
    assert got["n_l1_bx"].tolist() == [3, 3, 3, 1, 2, 2]
    assert got["near_dphi"].tolist() == [4, 4, 196, ALONE_DPHI, 4, 4]
    assert got["near_deta"].tolist() == [0, 0, 0, 0, 2, 2]
    assert got["near_dqual"].tolist() == [-2, 2, -1, 0, 2, -2]  # muon 2's nearest is muon 1 (196 vs 200)
    assert got["near_dpt"].tolist() == [-10, 10, 10, 0, 6, -6]


def test_neighbour_ties_go_to_the_earlier_muon():
    got = neighbour_features(np.array([3]), np.array([10, 0, 20]), np.zeros(3, int), np.array([12, 13, 14]),
                             np.array([1, 2, 3]))  # fmt: skip
    assert got["near_dqual"].tolist() == [1, -1, -2]  # muon 0 is 10 from both others: muon 1 (earlier) wins


def test_neighbour_features_reject_inconsistent_counts():
    with pytest.raises(ValueError, match="counts add up to 3 muons but 2"):
        neighbour_features(np.array([3]), *(np.zeros(2, int) for _ in range(4)))


def skim_candidates(path, out, selection=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    skim_file(path, "l1ntuple", selection, out / "skim.parquet", out / "cutflow.csv",
              out_candidates=out / "candidates.parquet")  # fmt: skip
    return pd.read_parquet(out / "skim.parquet"), pd.read_parquet(out / "candidates.parquet")


def real_muons(cand: pd.DataFrame) -> set[tuple[int, int]]:
    real = cand[~cand["is_fake"]]
    return set(zip(real["event"], real["l1_index"], strict=True))


def test_candidates_of_the_hand_built_file(hand_file, tmp_path):  # noqa: F811
    path, expected = hand_file
    skim, cand = skim_candidates(path, tmp_path, {"fake_offline_id": "tight"})  # label = the regression's matching
    assert len(cand) == EXPECTED_CUTFLOW["l1_pt"]  # every selected L1 muon
    assert (~cand["is_fake"]).sum() == EXPECTED_CUTFLOW["matched_pairs"]
    assert real_muons(cand) == {(event, l1) for event, l1, _ in found_pairs(skim)} == {(e, i) for e, i, _ in expected}
    # the two L1 muons for one offline muon (hwEta 0 and 4, hwPhi 500): the farther one is the fake, next to it
    pair = cand[(cand["hwPhi"] == 500)].sort_values("l1_index")
    assert pair["is_fake"].tolist() == [True, False]
    assert pair["n_l1_bx"].tolist() == [2, 2]
    assert pair["near_dphi"].tolist() == [0, 0] and pair["near_deta"].tolist() == [4, 4]
    alone = cand[cand["event"] == cand["event"].min()]
    assert alone["n_l1_bx"].tolist() == [1] and alone["near_dphi"].tolist() == [ALONE_DPHI]
    # skim columns agree with the skim's own where the muon is matched
    merged = cand.merge(skim, on=["event", "l1_index"], suffixes=("", "_skim"))
    for name in ("hwPt", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual", "l1_pt"):
        np.testing.assert_array_equal(merged[name], merged[f"{name}_skim"])


def test_fake_label_uses_the_looser_offline_id(hand_file, tmp_path):  # noqa: F811
    path, expected = hand_file
    skim, cand = skim_candidates(path, tmp_path)  # default: loose offline muons make an L1 muon real
    assert found_pairs(skim) == expected  # the regression's pairs do not change
    extra = real_muons(cand) - {(e, i) for e, i, _ in expected}
    ((event, index),) = extra  # the L1 muon whose offline muon is loose but not tight
    row = cand[(cand["event"] == event) & (cand["l1_index"] == index)]
    assert row["hwPhi"].tolist() == [250] and row["hwEta"].tolist() == [30]


def test_candidates_of_l1_only_inputs_have_no_label(tmp_path):
    raw = tmp_path / "scout_000007_000000.dat"
    scouting.write_run3(raw, scouting_records(), run=7, lumi=1)
    skim_file(raw, "scouting-run3", None, tmp_path / "skim.parquet", tmp_path / "cutflow.csv",
              out_candidates=tmp_path / "candidates.parquet")  # fmt: skip
    skim = pd.read_parquet(tmp_path / "skim.parquet")
    cand = pd.read_parquet(tmp_path / "candidates.parquet")
    assert "is_fake" not in cand.columns
    pd.testing.assert_frame_equal(cand[list(skim.columns)], skim)
