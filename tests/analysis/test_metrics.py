"""Metrics against hand-computed values on a tiny fixed array, including the φ wrap-around."""

import numpy as np
import pytest

from l1refit.analysis.metrics import METRIC_COLUMNS, Windows, metrics, paper_row, residuals


def test_hand_computed_values_with_phi_wrap():
    # phi: L1 at +3.14, offline at -3.14 -> difference 6.28 wraps to 6.28 - 2pi = -0.0031853
    res = residuals(
        phi=[3.14, 0.0, 0.2, 1.0],
        eta=[0.5, 0.5, 0.5, 0.5],
        pt=[10.0, 10.05, 12.0, 20.0],
        reco_phi=[-3.14, 0.005, 0.0, 1.0],
        reco_eta=[0.5, 0.499, 0.45, 0.6],
        reco_pt=[10.0, 10.0, 10.0, 10.0],
    )
    dphi = np.array([6.28 - 2 * np.pi, -0.005, 0.2, 0.0])
    np.testing.assert_allclose(res["phi"], dphi, atol=1e-12)
    m = metrics(res)
    assert m["phi_rms"] == pytest.approx(np.sqrt(np.mean(dphi**2)))
    assert m["phi_core"] == 75.0  # -0.0032, -0.005, 0.0 inside +-8 mrad; 0.2 outside
    assert m["phi_tail"] == 25.0  # only 0.2 > 0.1
    deta = np.array([0.0, 0.001, 0.05, -0.1])
    assert m["eta_rms"] == pytest.approx(np.sqrt(np.mean(deta**2)))
    assert m["eta_core"] == 50.0  # 0 and 0.001 < 0.0015
    assert m["eta_tail"] == 25.0  # 0.05 is not "more than 0.05"; -0.1 is
    dpt = np.array([0.0, 0.005, 0.2, 1.0])
    assert m["pt_rms"] == pytest.approx(np.sqrt(np.mean(dpt**2)))
    assert m["pt_core"] == 50.0 and m["pt_tail"] == 50.0
    assert list(m) == list(METRIC_COLUMNS)


def test_windows_from_config_override_and_empty_sample():
    w = Windows.from_config({"core": {"phi": 0.01}})
    assert w.core == {"phi": 0.01, "eta": 0.0015, "pt": 0.01} and w.tail["pt"] == 0.15
    with pytest.raises(ValueError, match="empty"):
        metrics({"phi": [], "eta": [], "pt": []})


def test_paper_gmt_row():
    row = paper_row("GMT")
    assert row["phi_rms"] == 0.166 and row["pt_tail"] == 44.84
