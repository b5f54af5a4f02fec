"""The propagation-accuracy table on 50 k synthetic events: bounds on propagated − true station-2 positions per pT
bin, and the skim's matching with propagated against true positions (docs/physics.md §1.7)."""

import awkward as ak
import numpy as np
import pandas as pd
import pytest

from l1refit.analysis.propagation import (
    COLUMNS,
    PT_BINS,
    propagation_accuracy,
    synthetic_events,
    write_propagation_table,
)
from l1refit.config.loading import defaults
from l1refit.simulate import ugmt
from l1refit.skim.selection import Selection

N_EVENTS = 50_000
# RMS and 99th percentile of |Δφ| [rad] per bin: measured 0.026/0.053, 0.019/0.026, 0.0058/0.0092, 0.0007/0.0015,
# then < 0.0009; what is left at low pT is the shape of the synthetic K_eff that no physical loss follows (§1.7)
DPHI_BOUNDS = {"3-5": (0.032, 0.065), "5-7": (0.023, 0.031), "7-10": (0.0075, 0.012), "10-15": (0.0012, 0.0025)}
HIGH_PT_DPHI = 0.0012


@pytest.fixture(scope="module")
def gen():
    return defaults("generator")


@pytest.fixture(scope="module")
def selection():
    return Selection.from_config({})


@pytest.fixture(scope="module")
def events(gen):
    return list(synthetic_events(N_EVENTS, 2024, gen, ugmt.build_luts(gen)))


@pytest.fixture(scope="module")
def table(events, selection):
    return propagation_accuracy(events, selection).set_index("pt_bin")


def test_layout_and_counts(table, events):
    assert list(table.reset_index().columns) == list(COLUMNS)
    assert list(table.index) == [f"{lo:g}-{hi:g}" for lo, hi in zip(PT_BINS[:-1], PT_BINS[1:], strict=True)] + ["all"]
    bins = table.drop(index="all")
    assert bins["n"].sum() == table.loc["all", "n"] > 0.7 * N_EVENTS
    assert bins["n_barrel"].sum() == table.loc["all", "n_barrel"]
    # muons the files put at MB2 reach it (the same range-out, 3.45 GeV), but for a few just above it at 3-5 GeV
    assert (table.drop(index=["3-5", "all"])["failed"] == 0).all() and table.loc["3-5", "failed"] < 0.002 * N_EVENTS
    assert bins["fake_rate_true"].isna().all() and np.isfinite(table.loc["all", "fake_rate_true"])


def test_position_accuracy_per_pt_bin(table):
    for label, (rms, p99) in DPHI_BOUNDS.items():
        assert table.loc[label, "dphi_rms"] < rms and table.loc[label, "dphi_p99"] < p99, label
    for label in ("15-25", "25-45", "45-inf"):
        assert table.loc[label, "dphi_rms"] < HIGH_PT_DPHI and table.loc[label, "dphi_p99"] < HIGH_PT_DPHI
    # what is left is a small bias of sign q where the synthetic K_eff and the calibrated loss differ in shape
    assert 0.005 < table.loc["3-5", "qdphi_mean"] < 0.025 and 0.012 < table.loc["5-7", "qdphi_mean"] < 0.025
    assert table.loc["3-5", "deta_rms"] < 0.014 and table.loc["3-5", "deta_p99"] < 0.04
    assert (table.drop(index=["3-5", "all"])["deta_rms"] < 0.0015).all()


def test_matching_with_propagated_positions(table):
    above = table.loc[["7-10", "10-15", "15-25", "25-45"]]
    np.testing.assert_allclose(above["efficiency_propagated"], above["efficiency_true"], atol=0.005)
    assert table.loc["5-7", "efficiency_propagated"] > table.loc["5-7", "efficiency_true"] - 0.015
    assert table.loc["3-5", "efficiency_propagated"] > table.loc["3-5", "efficiency_true"] - 0.04
    everything = table.loc["all"]
    assert 0.78 < everything["efficiency_true"] < 0.87
    # measured 0.809 against 0.822: the matching loses 1.3 points, all of it under 7 GeV (physics.md §1.7)
    assert everything["efficiency_true"] - 0.025 < everything["efficiency_propagated"] < everything["efficiency_true"]
    assert everything["fake_rate_propagated"] < 3 * everything["fake_rate_true"] + 0.001


def test_a_propagator_bending_the_wrong_way_fails_the_bounds(events, selection):
    flipped = [ak.with_field(ev, ak.with_field(ev["Muon"], -ev["Muon"]["charge"], "charge"), "Muon") for ev in events]
    wrong = propagation_accuracy(flipped, selection).set_index("pt_bin")
    assert wrong.loc["7-10", "dphi_rms"] > 10 * DPHI_BOUNDS["7-10"][0]
    assert wrong.loc["15-25", "dphi_rms"] > 20 * HIGH_PT_DPHI
    assert wrong.loc["7-10", "efficiency_propagated"] < 0.1
    assert wrong.loc["all", "efficiency_propagated"] < 0.5 * wrong.loc["all", "efficiency_true"]


def test_write_table_is_reproducible(tmp_path, gen, selection):
    a, b = tmp_path / "a" / "propagation.csv", tmp_path / "b.csv"
    written = write_propagation_table(a, 3000, 7, gen, selection)
    write_propagation_table(b, 3000, 7, gen, selection)
    assert a.read_bytes() == b.read_bytes()
    assert list(tmp_path.glob("**/.*tmp*")) == []  # written through atomic_path
    back = pd.read_csv(a, keep_default_na=False, na_values=[""])
    assert list(back.columns) == list(COLUMNS) and len(back) == len(written)
    np.testing.assert_allclose(back["n"], written["n"])
