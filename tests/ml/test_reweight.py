"""Training weights toward an application population: the density ratio, its use in the loss, and the limit."""

import numpy as np
import pandas as pd
import pytest

from l1refit.ml.baselines import bayes_corrections
from l1refit.ml.reweight import Reweighting


def _population(n: int, slope: float, seed: int) -> pd.DataFrame:
    """Muons with offline pT ~ 2 + Exp(slope) GeV, |η| uniform, charge ±1; L1 values smeared from them."""
    rng = np.random.default_rng(seed)
    pt = 2.0 + rng.exponential(slope, n)
    eta = rng.uniform(-0.9, 0.9, n)
    return pd.DataFrame({"reco_pt": pt, "reco_eta": eta, "charge": rng.choice([-1, 1], n),
                         "l1_pt": pt * rng.normal(1.1, 0.1, n), "l1_eta": eta + rng.normal(0, 0.02, n)})  # fmt: skip


def test_weights_follow_the_known_density_ratio():
    """Training pT ~ Exp(3 GeV), target ~ Exp(8 GeV): the weights are the ratio of the two densities (up to the
    normalisation), and the weighted training histogram is the target's."""
    train, target = _population(400_000, 3.0, 1), _population(200_000, 8.0, 2)
    rw = Reweighting(pt_bins=30, pt_max=40.0, eta_bins=4, max_weight=1e9)
    w, summary = rw.weights(train, target)
    assert w.mean() == pytest.approx(1.0)
    x = train["reco_pt"].to_numpy() - 2.0
    exact = (np.exp(-x / 8.0) / 8.0) / (np.exp(-x / 3.0) / 3.0)
    inside = train["reco_pt"].to_numpy() < 15.0  # enough of both populations for a per-bin ratio
    ratio = w[inside] / exact[inside]
    assert np.std(np.log(ratio)) < 0.25  # the bin-averaged ratio tracks the exact one
    edges = np.geomspace(2.0, 40.0, 31)
    h_train = np.histogram(train["reco_pt"], edges, weights=w)[0] / len(train)
    h_target = np.histogram(target["reco_pt"], edges)[0] / len(target)
    low = edges[1:] <= 15.0
    np.testing.assert_allclose(h_train[low], h_target[low], rtol=0.05)
    assert 0.05 < summary["effective_fraction"] < 0.9 and summary["capped_fraction"] == 0.0


def test_cap_l1_space_and_errors():
    train, target = _population(50_000, 3.0, 1), _population(50_000, 8.0, 2)
    w, summary = Reweighting(max_weight=2.0).weights(train, target)
    assert summary["capped_fraction"] > 0  # every capped muon carries the cap, the largest weight
    assert np.mean(np.isclose(w, w.max())) == pytest.approx(summary["capped_fraction"])
    w_l1, _ = Reweighting(space="l1").weights(train, target)
    assert not np.allclose(w_l1, Reweighting().weights(train, target)[0])
    with pytest.raises(ValueError, match="reweight.space"):
        Reweighting(space="gen")
    with pytest.raises(ValueError, match="column.s. reco_pt missing"):
        Reweighting().weights(train.drop(columns="reco_pt"), target)


def test_weighted_training_learns_the_weighted_conditional_mean(toy_skim, fit_toy):
    """The same inputs with two offline truths (pT low by 10 % or high by 20 %): unweighted the network learns
    their mean; with the second copy at weight 0 it learns the first."""
    base = toy_skim(3000, seed=11)
    low = base.assign(reco_pt=base["l1_pt"] * 1.1)
    high = base.assign(reco_pt=base["l1_pt"] * 0.8)
    both = pd.concat([low, high], ignore_index=True)
    w = np.r_[np.ones(len(low)), np.zeros(len(high))]
    kwargs = {"epochs": 30, "patience": 30, "batch_size": 128}
    plain, _ = fit_toy(both, **kwargs)
    weighted, history = fit_toy(both, weights=w, **kwargs)
    ratio_plain = np.median(plain.predict(base)["pred_pt"] / base["l1_pt"])
    ratio_weighted = np.median(weighted.predict(base)["pred_pt"] / base["l1_pt"])
    assert ratio_plain == pytest.approx(0.95, abs=0.04)
    assert ratio_weighted == pytest.approx(1.1, abs=0.04)
    assert weighted.metadata["weighted"] and np.isfinite(history["val_loss"]).all()
    with pytest.raises(ValueError, match="weights: need"):
        fit_toy(both, weights=w[:-1])


def test_limit_recovers_the_analytic_optimum():
    """Per cell, φ_off = φ_L1 − δ(cell) + noise and pT_off ∈ {a, b} with equal odds: the cross-fitted correction
    gives φ_L1 − δ and the RMS-optimal p = (1/a + 1/b)/(1/a² + 1/b²), never a muon's own truth."""
    rng = np.random.default_rng(4)
    n = 200_000
    hw_pt = rng.integers(10, 20, n)
    charge = rng.choice([-1, 1], n)
    l1_pt = (hw_pt - 1) * 0.5
    delta = 0.02 * charge * hw_pt / 10
    a, b = 0.8 * l1_pt, 1.3 * l1_pt
    reco_pt = np.where(rng.random(n) < 0.5, a, b)
    df = pd.DataFrame({
        "part": np.zeros(n, int), "entry": np.arange(n) // 2, "hwPt": hw_pt, "hwEtaAtVtx": np.zeros(n, int),
        "charge": charge, "l1_phi": np.full(n, 1.0), "l1_eta": np.zeros(n), "l1_pt": l1_pt,
        "reco_phi": 1.0 - delta + rng.normal(0, 0.01, n), "reco_eta": rng.normal(0, 0.01, n), "reco_pt": reco_pt,
    })  # fmt: skip
    pred = bayes_corrections(df, seed=2)
    np.testing.assert_allclose(pred["pred_phi"], 1.0 - delta, atol=1e-3)
    np.testing.assert_allclose(pred["pred_eta"], 0.0, atol=1e-3)
    optimum = (1 / a + 1 / b) / (1 / a**2 + 1 / b**2)
    np.testing.assert_allclose(pred["pred_pt"], optimum, rtol=0.02)
    assert not np.allclose(pred["pred_pt"], reco_pt, rtol=0.05)
    with pytest.raises(ValueError, match="needs column 'reco_pt'"):
        bayes_corrections(df.drop(columns="reco_pt"))
