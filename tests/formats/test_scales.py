"""Hardware scales: values pinned from docs/formats.md §1/§2.4, and inverse conversions."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from l1refit import scales


def test_pt_scale_and_empty_slot():
    hw = np.array([0, 1, 2, 51, 511])
    np.testing.assert_array_equal(scales.hw_to_pt(hw), [-0.5, 0.0, 0.5, 25.0, 255.0])
    assert scales.hw_to_pt(hw, "scouting").dtype == np.float32


def test_eta_scale_two_conventions_agree():
    hw = np.array([-256, -1, 0, 74, 255])
    expected = hw * 0.010875
    np.testing.assert_allclose(scales.hw_to_eta(hw), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(scales.hw_to_eta(hw, "scouting"), expected, rtol=1e-6)


def test_phi_cmssw_wrap_example_from_formats():
    # docs/formats.md §2.4: hwPhi=288 gives 3.141504 (stays positive), 289 gives 3.152412 - 2pi = -3.130773
    phi = scales.hw_to_phi(np.array([0, 288, 289, 575]), "cmssw")
    np.testing.assert_allclose(phi, [0.0, 3.141504, 3.152412 - 2 * np.pi, 575 * 0.010908 - 2 * np.pi], atol=1e-12)
    assert phi[1] > 0 and phi[2] < 0


def test_phi_scouting_range_is_half_open_at_minus_pi():
    phi = scales.hw_to_phi(np.arange(576), "scouting")
    assert phi.dtype == np.float32
    assert phi.min() >= -np.pi and phi.max() < np.pi
    # float32(2pi/576) * 288 rounds to 3.1415925 < pi (compared in double), so it stays positive as in CMSSW;
    # 289 is the first value wrapped to negative
    assert phi[288] == np.float32(3.1415925) and phi[289] < 0


def test_conventions_differ_by_at_most_2e_4():
    hw = np.arange(576)
    d = scales.delta_phi(scales.hw_to_phi(hw, "cmssw"), scales.hw_to_phi(hw, "scouting").astype(np.float64))
    assert np.abs(d).max() < 1.8e-4


def test_unconstrained_pt_conventions():
    hw = np.array([0, 1, 21])
    np.testing.assert_array_equal(scales.hw_to_pt_unconstrained(hw), [0.0, 0.0, 20.0])
    np.testing.assert_array_equal(scales.hw_to_pt_unconstrained(hw, "scouting"), [-1.0, 0.0, 20.0])


def test_inverse_floor_and_round_rules():
    # pT: floor; 25.0 and 25.49 are both in the hwPt=51 bin, saturation at 511, negative -> 1
    np.testing.assert_array_equal(scales.pt_to_hw([25.0, 25.49, 25.5, 1e4, -3]), [51, 51, 52, 511, 1])
    # eta: nearest, halves away from zero
    np.testing.assert_array_equal(scales.eta_to_hw([0.5 * 0.010875, -0.5 * 0.010875, 0.0054]), [1, -1, 0])
    np.testing.assert_array_equal(scales.eta_to_hw([5.0, -5.0]), [255, -256])
    # phi: floor of a true angle, any branch
    lsb = 2 * np.pi / 576
    np.testing.assert_array_equal(scales.phi_to_hw([0.99 * lsb, -0.01 * lsb, np.pi, -np.pi + 1e-9]), [0, 575, 288, 288])


def test_unknown_convention_and_mode():
    with pytest.raises(ValueError, match="convention"):
        scales.hw_to_phi(1, "cms")
    with pytest.raises(ValueError, match="mode"):
        scales.phi_to_hw(1.0, mode="ceil")


@given(st.integers(0, 575), st.sampled_from(scales.CONVENTIONS))
def test_phi_round_trip_from_stored_floats(hw, convention):
    phi = np.float32(scales.hw_to_phi(hw, convention))
    assert scales.phi_to_hw(phi, mode="round", convention=convention) == hw


@given(st.integers(-256, 255), st.integers(1, 511))
def test_eta_pt_round_trip_from_stored_floats(hw_eta, hw_pt):
    assert scales.eta_to_hw(np.float32(scales.hw_to_eta(hw_eta))) == hw_eta
    assert scales.pt_to_hw(np.float32(scales.hw_to_pt(hw_pt)), mode="round") == hw_pt


def test_wrap_phi_interval():
    x = np.array([np.pi, -np.pi, 3 * np.pi, 0.0, 2 * np.pi + 0.1])
    w = scales.wrap_phi(x)
    assert np.all(w > -np.pi) and np.all(w <= np.pi)
    np.testing.assert_allclose(w, [np.pi, np.pi, np.pi, 0.0, 0.1], atol=1e-12)
