"""The LUT and GBDT baselines of Table 2: a cell function recovered exactly, a noisy offset learnt, bit for bit."""

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from l1refit.analysis.metrics import gmt_metrics, prediction_metrics
from l1refit.ml.baselines import gbdt_baseline, lut_baseline
from l1refit.scales import ETA_LSB, PHI_LSB, wrap_phi

PRED = ["pred_phi", "pred_eta", "pred_pt"]


def _muons(hw_pt, hw_eta, charge, hw_phi, offsets) -> pd.DataFrame:
    """A skim-like frame whose offline values are L1 minus the given offsets (φ wrapped)."""
    l1_pt, l1_eta, l1_phi = (hw_pt - 1) * 0.5, hw_eta * ETA_LSB, wrap_phi(hw_phi * PHI_LSB)
    dphi, deta, dpt = offsets(hw_pt, hw_eta, charge)
    return pd.DataFrame({
        "hwPt": hw_pt, "hwEtaAtVtx": hw_eta, "hwPhiAtVtx": hw_phi, "charge": charge,
        "l1_pt": l1_pt, "l1_eta": l1_eta, "l1_phi": l1_phi,
        "reco_pt": l1_pt - dpt, "reco_eta": l1_eta - deta, "reco_phi": wrap_phi(l1_phi - dphi),
    })  # fmt: skip


def _cell_offsets(hw_pt, hw_eta, charge):
    """Offsets that are a deterministic function of the (hwPt, hwEtaAtVtx, charge) cell."""
    return 0.3 * charge / hw_pt, 0.002 * np.sin(hw_eta) + 0.001 * charge, 0.1 * (hw_pt - 1) * 0.5 + 0.01 * hw_eta


def test_lut_recovers_a_cell_function_exactly():
    pt, eta, q = np.meshgrid(np.arange(5, 15), np.arange(-10, 10), [-1, 1], indexing="ij")
    grid = [a.ravel() for a in (pt, eta, q)]
    rng = np.random.default_rng(3)
    train = _muons(*(np.tile(a, 25) for a in grid), rng.integers(0, 576, 25 * grid[0].size), _cell_offsets)
    pick = rng.integers(0, grid[0].size, 3_000)
    test = _muons(*(a[pick] for a in grid), rng.integers(0, 576, pick.size), _cell_offsets)
    out = lut_baseline(train, test)
    assert out.index.equals(test.index) and list(out.columns) == [*test.columns, *PRED]
    for var in ("phi", "eta", "pt"):
        np.testing.assert_allclose(out[f"pred_{var}"], out[f"reco_{var}"], atol=1e-12)
    m = prediction_metrics(out)
    assert max(m["phi_rms"], m["eta_rms"], m["pt_rms"]) < 1e-12
    assert (m["phi_core"], m["eta_core"], m["pt_core"], m["pt_tail"]) == (100.0, 100.0, 100.0, 0.0)
    again = lut_baseline(train, test)
    for col in PRED:
        np.testing.assert_array_equal(again[col].to_numpy(), out[col].to_numpy())


def _noisy_sample(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hw_pt, hw_eta = rng.integers(6, 60, n), rng.integers(-80, 80, n)
    charge, hw_phi = rng.choice([-1, 1], n), rng.integers(0, 576, n)

    def offsets(pt, eta, q):
        dphi, deta, dpt = _cell_offsets(pt, eta, q)
        return dphi + rng.normal(0, 0.005, n), deta + rng.normal(0, 0.0005, n), dpt + rng.normal(0, 0.05, n)

    return _muons(hw_pt, hw_eta, charge, hw_phi, offsets)


def test_gbdt_learns_an_offset_and_is_deterministic():
    train, test = _noisy_sample(4, 4_000), _noisy_sample(5, 2_000)
    with threadpool_limits(1, user_api="openmp"):  # tiny fits: OpenMP threads only contend on a loaded runner
        out = gbdt_baseline(train, test, seed=0, max_iter=60)
        again = gbdt_baseline(train, test, seed=0, max_iter=60)
    gmt, fitted = gmt_metrics(test), prediction_metrics(out)
    for var in ("phi", "eta", "pt"):
        assert fitted[f"{var}_rms"] < 0.5 * gmt[f"{var}_rms"], var
    for col in PRED:
        np.testing.assert_array_equal(again[col].to_numpy(), out[col].to_numpy())
