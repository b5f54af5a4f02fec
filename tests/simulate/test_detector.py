"""The synthetic detector's hardware behaviour: uGMT LUTs and extrapolation, range-out and bending, the 90 % rule,
the φ floor and the coarse η grid."""

import numpy as np
import pytest

from l1refit import scales
from l1refit.simulate import ugmt
from l1refit.simulate.bmtf import measure, propagate
from l1refit.simulate.chain import simulate_muons, zerobias_truth
from l1refit.simulate.detector import ninety_percent_scale


def test_luts_are_4bit_monotonic_and_saturate_at_low_pt(luts):
    assert luts.dphi.shape == (32, 128) and luts.dphi.max() <= 15 and luts.deta.max() <= 15
    barrel = luts.dphi[:10, 9:128]  # pT_L1 >= 4 GeV, barrel eta indices
    assert np.all(np.diff(barrel.astype(int), axis=1) <= 0), "bending correction must fall with pT"
    assert np.all(luts.dphi[:10, 7] == 15), "3 GeV muons bend more than 4 bits can hold"
    # the floor: at 20 GeV the correction is K/pT = ~0.12 rad, i.e. 2.8 LSB of 43.6 mrad -> 2
    assert 2 <= luts.dphi[0, 41] <= 3


def test_extrapolation_by_hand():
    dphi = np.zeros((32, 128), np.uint8)
    deta = np.zeros((32, 128), np.uint8)
    dphi[2, 20], deta[2, 20] = 5, 3  # |hwEta| in 16..23 -> index 2; hwPt 20
    luts = ugmt.Luts(dphi=dphi, deta=deta)
    eta, phi = ugmt.extrapolate([20, 20, 200], [-17, 17, 17], [574, 10, 10], [1, -1, 1], luts)
    # mu+ : phi_vtx = phi + 4*5 (wraps 574 -> 18); eta shrinks towards 0 by 3
    np.testing.assert_array_equal(phi, [(574 + 20) % 576, 10 - 20 + 576, 10])
    np.testing.assert_array_equal(eta, [-14, 14, 17])  # hwPt >= 128: not extrapolated


def test_range_out_and_bending_direction(gen):
    n = 20000
    rng = np.random.default_rng(3)
    pt = np.full(n, 10.0)
    q = np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int8)
    st = propagate(rng, pt, np.zeros(n), np.zeros(n), q, 0.0, gen)
    assert st.reach_mb2.all()
    # mu+ turns to negative phi by about K/pT = 0.25 rad at 10 GeV
    assert np.median(st.phi[q > 0]) == pytest.approx(-0.25, abs=0.02)
    assert np.median(st.phi[q < 0]) == pytest.approx(0.25, abs=0.02)
    low = propagate(rng, np.full(n, 3.0), np.zeros(n), np.zeros(n), q, 0.0, gen)
    assert low.reach_mb2.mean() < 0.2  # 3 GeV muons range out before MB2 (~3.45 GeV needed) unless f fluctuates low
    high = propagate(rng, np.full(n, 4.5), np.zeros(n), np.zeros(n), q, 0.0, gen)
    assert high.reach_mb2.mean() > 0.9


def test_ninety_percent_rule_holds_per_station_class(gen):
    n = 200_000
    rng = np.random.default_rng(4)
    pt = np.full(n, 10.0)
    q = np.ones(n, np.int8)
    no_fakes = {**gen, "bmtf": {**gen["bmtf"], "fake_fraction": 0.0}}
    st = propagate(rng, pt, np.zeros(n), np.zeros(n), q, 0.0, no_fakes)
    l1 = measure(rng, pt, q, st, no_fakes)
    cls = (st.n_stations == 4) & (l1["hwQual"] == 15)  # at 10 GeV muons cross all four stations
    assert cls.mean() > 0.99
    # the trigger condition pT_L1 >= X is (1 - quantile) efficient for muons of true pT = X (10 GeV is on the grid)
    efficiency = 1.0 - gen["bmtf"]["threshold_quantile"]
    assert (scales.hw_to_pt(l1["hwPt"][cls]) >= 10.0).mean() == pytest.approx(efficiency, abs=0.005)
    bmtf = gen["bmtf"]
    s = ninety_percent_scale(bmtf["sigma_4"], 0.0, 1.0, 0.10)
    assert s == pytest.approx(1 / (1 - 1.2816 * bmtf["sigma_4"]), rel=0.03)  # Gaussian approximation


def test_phi_is_floored_at_mb2_and_eta_has_the_coarse_grid(gen, luts):
    rng = np.random.default_rng(5)
    mu = simulate_muons(rng, zerobias_truth(rng, 100_000, gen), gen, luts)
    has = mu["has_l1"] & mu["barrel"]
    coarse = np.isin(np.abs(mu["l1_hwEta"][has]), gen["eta"]["coarse_grid"])
    assert 0.2 < coarse.mean() < 0.6  # the coarse values dominate the hwEta distribution, as in real data
    assert np.all(mu["l1_hwQual"][has] >= 13)
