"""Opposite-charge pairs and invariant masses from a skim."""

import numpy as np
import pandas as pd
import pytest

from l1refit.analysis.dimuon import MUON_MASS, pair_masses


def _mass(pt1, eta1, phi1, pt2, eta2, phi2, m=MUON_MASS):
    """Textbook four-vector sum, written independently of vector's behaviour."""

    def p4(pt, eta, phi):
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        return np.sqrt(px**2 + py**2 + pz**2 + m**2), px, py, pz

    e1, x1, y1, z1 = p4(pt1, eta1, phi1)
    e2, x2, y2, z2 = p4(pt2, eta2, phi2)
    return np.sqrt((e1 + e2) ** 2 - (x1 + x2) ** 2 - (y1 + y2) ** 2 - (z1 + z2) ** 2)


def _skim():
    # event (0, 0): + -  -> one pair; event (0, 1): + + -> none; event (1, 0): + - - -> two pairs; (1, 1): single
    rows = [
        (0, 0, +1, 5.0, 0.1, 0.2), (0, 0, -1, 4.0, -0.3, 2.5),
        (0, 1, +1, 6.0, 0.0, 0.0), (0, 1, +1, 7.0, 0.2, 1.0),
        (1, 0, +1, 10.0, 0.5, -3.0), (1, 0, -1, 8.0, 0.4, 3.0), (1, 0, -1, 3.0, -0.6, 0.0),
        (1, 1, -1, 9.0, 0.0, 0.0),
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=["part", "entry", "charge", "l1_pt", "l1_eta", "l1_phi"])
    df["pred_pt"], df["pred_eta"], df["pred_phi"] = df["l1_pt"] * 0.9, df["l1_eta"], df["l1_phi"] + 0.01
    df["reco_pt"], df["reco_eta"], df["reco_phi"] = df["l1_pt"] * 1.1, df["l1_eta"] - 0.01, df["l1_phi"]
    return df


def test_masses_of_opposite_charge_pairs_in_the_same_event():
    df = _skim()
    got = pair_masses(df)
    r = df.to_dict("list")
    pairs = [(0, 1), (4, 5), (4, 6)]
    for source, (pt, eta, phi) in {"GMT": ("l1_pt", "l1_eta", "l1_phi"), "NN": ("pred_pt", "pred_eta", "pred_phi"),
                                   "offline": ("reco_pt", "reco_eta", "reco_phi")}.items():  # fmt: skip
        want = [_mass(r[pt][i], r[eta][i], r[phi][i], r[pt][j], r[eta][j], r[phi][j]) for i, j in pairs]
        np.testing.assert_allclose(np.sort(got[source]), np.sort(want), rtol=1e-9)
    # φ wrap: muons at φ = −3.0 and 3.0 are 0.28 rad apart, not 6
    assert got["GMT"][1] == pytest.approx(_mass(10, 0.5, -3.0, 8, 0.4, 3.0 - 2 * np.pi), rel=1e-9)


def test_row_order_does_not_matter():
    df = _skim()
    shuffled = df.sample(frac=1.0, random_state=3)
    for source in ("GMT", "offline"):
        np.testing.assert_allclose(np.sort(pair_masses(shuffled)[source]), np.sort(pair_masses(df)[source]))


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="pred_pt"):
        pair_masses(_skim().drop(columns=["pred_pt"]))
    with pytest.raises(ValueError, match="entry"):
        pair_masses(_skim().drop(columns=["entry"]), sources=("GMT",))
