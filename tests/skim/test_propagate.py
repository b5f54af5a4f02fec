"""The offline-muon propagator to MB2: the bending and path of docs/physics.md §1.4–§1.5, exact helices, range-out,
charge sign, φ wrap, z0, dtype, and its config errors."""

import dataclasses

import numpy as np
import pytest

from l1refit.config.loading import defaults
from l1refit.errors import ConfigError
from l1refit.formats.l1ntuple import STATION_INVALID
from l1refit.simulate import detector
from l1refit.skim import propagate
from l1refit.skim.propagate import DEFAULTS, PHYSICAL, Propagator, propagate_to_station2, transport

# docs/physics.md §1.4: K_eff(MB2) = pT·|Δφ| [rad GeV] and s_T/r from the full 2D integration, physical defaults
PT = np.array([3.5, 3.8, 4.2, 5, 6, 8, 10, 15, 20, 30, 45])
K_TABLE = np.array([3.23, 3.06, 2.92, 2.77, 2.68, 2.60, 2.56, 2.52, 2.50, 2.48, 2.47])
PATH_TABLE = np.array([1.128, 1.091, 1.065, 1.040, 1.025, 1.013, 1.008, 1.004, 1.002, 1.001, 1.001])
R = detector.R_MB2


def test_bending_reproduces_the_k_eff_table_of_physics_1_4():
    dphi, path, pt_left, reached = transport(PT, np.ones(PT.size), PHYSICAL)
    assert reached.all()
    k = PT * np.abs(dphi)
    np.testing.assert_allclose(k, K_TABLE, rtol=0.03)  # 3.15 vs 3.23 at 3.5 GeV, < 1 % from 5 GeV on
    np.testing.assert_allclose(k[PT >= 5], K_TABLE[PT >= 5], rtol=0.01)
    assert np.all(np.diff(k) < 0)  # the energy-loss rise at low pT
    np.testing.assert_allclose(path / R, PATH_TABLE, atol=0.014)
    # mean loss vertex -> MB2 ≈ 2.4 GeV at high pT (§1.2: 1.2 × 1.975 GeV)
    assert PT[-1] - pt_left[-1] == pytest.approx(1.2 * 1.975, abs=0.01)


def test_default_loss_reproduces_the_synthetic_bending_and_range_out():
    """The calibrated default: K_eff of the synthetic detector (k_loss 0.555) within 4 % from 4 GeV on, and
    muons reach MB2 from the generator's 3.45 GeV, not from 3.2 GeV as with the physical losses."""
    prop_gen = defaults("generator")["propagation"]
    pt = np.array([4.0, 4.5, 5, 6, 8, 10, 15, 25, 45])
    dphi, _, _, reached = transport(pt, np.ones(pt.size))
    k_synthetic = detector.k_eff(pt, 1.0, prop_gen)
    np.testing.assert_allclose(pt * np.abs(dphi), k_synthetic, rtol=0.05)
    np.testing.assert_allclose((pt * np.abs(dphi))[pt >= 8], k_synthetic[pt >= 8], rtol=0.02)
    assert reached.all()
    grid = np.linspace(3.0, 4.0, 201)
    for prop, range_out in ((Propagator(), prop_gen["mb2_pt"]), (PHYSICAL, 3.17)):
        reach = transport(grid, np.ones(grid.size), prop)[3]
        assert grid[np.argmax(reach)] == pytest.approx(range_out, abs=0.03)


def test_exact_helix_where_the_small_angle_form_fails():
    """Uniform field up to R_s, straight beyond, no loss: the closed-form circle through the origin."""
    r_s = 2.95
    prop = Propagator(coil_inner=r_s, coil_outer=r_s + 1e-9, yoke_field=0.0, loss_factor=0.0, min_pt=1e-3)
    pt = np.array([1.7, 2.0, 3.5, 10.0, 1000.0])
    dphi, path, _, reached = transport(pt, np.ones(pt.size), prop)
    rho = pt / (propagate.C_LIGHT * 3.8)
    alpha_s = np.arcsin(r_s / (2 * rho))  # angle to the radius at R_s; the position angle has turned by −α_s
    alpha = np.arcsin(r_s * np.sin(alpha_s) / R)
    assert reached.all()
    np.testing.assert_allclose(dphi, -alpha_s - (alpha_s - alpha), rtol=1e-7, atol=1e-12)
    expected_path = 2 * rho * alpha_s + R * np.cos(alpha) - r_s * np.cos(alpha_s)
    np.testing.assert_allclose(path, expected_path, rtol=1e-7)
    # the small-angle form 0.3·B·R_s·(1 − R_s/2r)/pT is 10 % short at 1.7 GeV: the propagator is not
    small = propagate.C_LIGHT * 3.8 * r_s * (1 - r_s / (2 * R)) / pt
    assert abs(dphi[0]) > 1.1 * small[0]


def test_no_field_is_a_straight_line():
    prop = Propagator(solenoid_field=0.0, yoke_field=0.0)
    dphi, path, _, reached = transport(np.array([3.5, 50.0]), np.array([1, -1]), prop)
    np.testing.assert_allclose(dphi, 0.0, atol=1e-15)
    np.testing.assert_allclose(path, R, rtol=1e-12)
    assert reached.all()


def test_step_size_converges():
    pt = np.array([3.4, 3.5, 5.0, 10.0, 40.0])
    coarse = transport(pt, np.ones(pt.size), PHYSICAL)
    fine = transport(pt, np.ones(pt.size), PHYSICAL, max_step=0.002)
    np.testing.assert_allclose(coarse[0], fine[0], atol=1e-3)  # < 1 mrad, a tenth of the L1 φ LSB
    np.testing.assert_allclose(coarse[1], fine[1], atol=5e-3)


def test_station_eta_agrees_with_the_synthetic_detector():
    rng = np.random.default_rng(3)
    n = 20_000
    pt, eta = rng.uniform(3.5, 60, n), rng.uniform(-1.2, 1.2, n)
    z0 = rng.normal(0, 0.035, n)
    eta_st, _ = propagate_to_station2(pt, eta, rng.uniform(-np.pi, np.pi, n), rng.choice([-1, 1], n), z0, PHYSICAL)
    diff = eta_st - detector.station_eta(eta, pt, z0)
    assert np.abs(diff).max() < 0.012
    assert np.abs(diff[pt > 5]).max() < 0.003
    # §1.5: |η_st| > |η_vtx| by ≈ tanh η·(s_T/r − 1): ≈ 0.02 at (5 GeV, 0.7), ≈ 0.07-0.08 at (3.5 GeV, 0.7)
    up, _ = propagate_to_station2([5.0, 3.5, 3.5], [0.7, 0.7, -0.7], [0.0] * 3, [1, -1, 1], 0.0, PHYSICAL)
    assert up[0] - 0.7 == pytest.approx(0.02, abs=0.005)
    assert up[1] - 0.7 == pytest.approx(0.075, abs=0.01)
    assert up[2] == pytest.approx(-up[1])


def test_z0_shifts_the_position_by_z0_over_r():
    eta = np.array([-0.8, 0.0, 0.5])
    args = (np.full(3, 8.0), eta, np.zeros(3), np.ones(3))
    at0, _ = propagate_to_station2(*args)
    shifted, _ = propagate_to_station2(*args, z0=np.array([0.05, -0.04, 0.03]))
    np.testing.assert_allclose(np.sinh(shifted) - np.sinh(at0), np.array([0.05, -0.04, 0.03]) / R, atol=2e-6)


def test_charge_sign_and_phi_wrap():
    args = ([5.0, 5.0, 5.0, 5.0], [0.1] * 4, [0.2, 0.2, 3.0, -3.0], [1, -1, -1, 1], 0.0, PHYSICAL)
    eta, phi = propagate_to_station2(*args)
    assert eta.dtype == np.float32 and phi.dtype == np.float32
    bend = 2.763 / 5.0  # K_eff(5 GeV) / pT
    # μ+ turns to −φ in B along +z (as the synthetic detector), μ− to +φ
    assert phi[0] == pytest.approx(0.2 - bend, abs=2e-3) and phi[1] == pytest.approx(0.2 + bend, abs=2e-3)
    assert phi[2] == pytest.approx(3.0 + bend - 2 * np.pi, abs=2e-3)  # wrapped into (−π, π]
    assert phi[3] == pytest.approx(-3.0 - bend + 2 * np.pi, abs=2e-3)
    assert np.all(np.abs(phi) <= np.pi)


def test_range_out_and_curl_back_give_minus_9999():
    pt = np.array([2.0, 2.9, 3.4, 3.6])
    eta, phi = propagate_to_station2(pt, np.zeros(4), np.zeros(4), np.ones(4), 0.0, PHYSICAL)
    np.testing.assert_array_equal(eta[:2], STATION_INVALID)
    np.testing.assert_array_equal(phi[:2], STATION_INVALID)
    assert np.all(eta[2:] != STATION_INVALID) and np.all(phi[2:] != STATION_INVALID)
    # a 3.5 GeV muon arrives with 0.80 GeV: seen if it needs 0.3 GeV there, not if it needs 1 GeV
    _, _, pt_left, reached = transport(np.array([3.5, 3.5]), np.ones(2), PHYSICAL)
    assert pt_left[0] == pytest.approx(0.80, abs=0.02) and reached.all()
    assert not transport(np.array([3.5]), np.ones(1), dataclasses.replace(PHYSICAL, min_pt=1.0))[3][0]
    # without any loss a 1.5 GeV muon curls back inside the solenoid (2ρ = 2.6 m < 2.95 m); 1.8 GeV gets out
    no_loss = Propagator(loss_factor=0.0)
    _, _, pt_left, reached = transport(np.array([1.5, 1.8]), np.array([1, -1]), no_loss)
    np.testing.assert_array_equal(reached, [False, True])
    np.testing.assert_allclose(pt_left, [1.5, 1.8])
    # NaN and non-positive pT fail too, never raise
    eta, _ = propagate_to_station2([np.nan, 0.0, -5.0], [0.0] * 3, [0.0] * 3, [1, 1, -1])
    np.testing.assert_array_equal(eta, STATION_INVALID)


def test_vectorised_over_chunks_the_same_as_one_by_one():
    rng = np.random.default_rng(5)
    n = propagate.CHUNK + 1000
    args = (rng.uniform(3, 100, n), rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n), rng.choice([-1, 1], n))
    eta, phi = propagate_to_station2(*args)
    order = rng.permutation(n)[:50]
    for i in order:
        one = propagate_to_station2(*(np.array([a[i]]) for a in args))
        assert (one[0][0], one[1][0]) == (eta[i], phi[i])


def test_from_config_defaults_and_errors():
    assert Propagator.from_config({}) == Propagator() == Propagator.from_config(None)
    assert Propagator.from_config(DEFAULTS) == Propagator()
    assert defaults("selection")["propagation"] == DEFAULTS  # the schema carries the same defaults
    custom = Propagator.from_config({"loss_factor": 1, "energy_loss": [[1.8, 2.9, 1.0]]})
    assert custom.loss_factor == 1.0 and custom.energy_loss == ((1.8, 2.9, 1.0),)
    bad = {
        "magnet": (3.8, "selection.propagation.magnet: unknown key"),
        "loss_factor": ("high", "selection.propagation.loss_factor: 'high' is not a number"),
        "energy_loss": ([[1.3, 1.5]], "selection.propagation.energy_loss: [[1.3, 1.5]] is not a list"),
        "coil_outer": (2.5, "selection.propagation.coil_outer: 2.5 breaks the rule coil_inner < coil_outer"),
        "min_pt": (0, "selection.propagation.min_pt: 0.0 breaks the rule min_pt > 0"),
    }
    for key, (value, message) in bad.items():
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            Propagator.from_config({key: value})
    with pytest.raises(ConfigError, match="energy_loss: .* 0 <= r_in < r_out"):
        Propagator.from_config({"energy_loss": [[2.0, 1.0, 0.3]]})
