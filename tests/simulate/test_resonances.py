"""Truth-level dimuon generator (docs/physics.md §5): PDG inputs, kinematics, line shapes, mixture bookkeeping."""

import time

import numpy as np
import pytest
from particle import Particle
from scipy import stats

from l1refit.simulate import resonances as res

M_MU = Particle.from_pdgid(13).mass / 1000.0
PDG = {"phi": 333, "jpsi": 443, "psi2s": 100443, "upsilon1s": 553, "upsilon2s": 100553, "upsilon3s": 200553}


def _four_vectors(pt, eta, phi, mass):
    """(E, px, py, pz) of massive tracks from (pT, η, φ), independent of the generator's boost code."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.sqrt(px**2 + py**2 + pz**2 + mass**2), px, py, pz


def _legs(events):
    return [_four_vectors(events[f"pt{i}"], events[f"eta{i}"], events[f"phi{i}"], M_MU) for i in (1, 2)]


def _pt_cdf(pt, n, p0, pt_min=0.0):
    """Analytic CDF of pT/(1+(pT/p0)²)ⁿ above pt_min."""
    return 1.0 - ((1.0 + (pt / p0) ** 2) / (1.0 + (pt_min / p0) ** 2)) ** (1.0 - n)


def _truncated_exp_mean(a, b, m0):
    width = b - a
    return a + m0 - width * np.exp(-width / m0) / (1.0 - np.exp(-width / m0))


def test_specs_match_particle_and_physics_model():
    specs = res.state_specs()
    assert tuple(specs) == res.STATES
    for name, pdgid in PDG.items():
        particle = Particle.from_pdgid(pdgid)
        assert specs[name].pdg_name == particle.name
        assert specs[name].mass == pytest.approx(particle.mass / 1000.0, rel=1e-12)
        assert specs[name].width == pytest.approx(particle.width / 1000.0, rel=1e-12)
        assert specs[name].line_shape == ("bw" if name == "phi" else "delta")
    assert specs["jpsi"].pdg_name == "J/psi(1S)"
    assert specs["jpsi"].mass == pytest.approx(3.0969, abs=1e-4)
    assert specs["upsilon1s"].mass == pytest.approx(9.4604, abs=2e-4)
    assert specs["phi"].width == pytest.approx(4.249e-3, rel=1e-3)
    assert (specs["phi"].n, specs["phi"].p0) == (3.4, 1.6)
    assert (specs["jpsi"].n, specs["jpsi"].p0) == (3.15, 4.0)
    assert (specs["psi2s"].n, specs["psi2s"].p0) == (3.1, 4.5)
    assert all((specs[f"upsilon{k}s"].n, specs[f"upsilon{k}s"].p0) == (3.0, 7.0) for k in (1, 2, 3))
    assert specs["continuum"].line_shape == "exp"


def test_state_spec_overrides():
    specs = res.state_specs({"jpsi": {"p0": 5.0}})
    assert specs["jpsi"].p0 == 5.0 and specs["jpsi"].mass == res.state_specs()["jpsi"].mass
    with pytest.raises(ValueError, match="unknown state"):
        res.state_specs({"omega": {"p0": 1.0}})
    with pytest.raises(TypeError):
        res.state_specs({"jpsi": {"colour": 1.0}})


@pytest.mark.parametrize("pt_min", [0.0, 40.0])
def test_dimuon_invariant_mass_is_parent_mass(pt_min):
    rng = np.random.default_rng(1)
    for spec in res.state_specs().values():
        events = res.decay_to_muons(rng, res.sample_parents(rng, spec, 20_000, pt_min=pt_min))
        (e1, *p1), (e2, *p2) = _legs(events)
        m2 = 2 * M_MU**2 + 2 * (e1 * e2 - sum(a * b for a, b in zip(p1, p2, strict=True)))
        np.testing.assert_allclose(np.sqrt(m2), events["mass"], rtol=1e-6)
        # the dimuon momentum is the parent's
        np.testing.assert_allclose(np.hypot(p1[0] + p2[0], p1[1] + p2[1]), events["parent_pt"], rtol=1e-9)
        if spec.line_shape == "delta":
            assert np.all(events["mass"] == spec.mass)
        assert np.all(events["q1"] == 1) and np.all(events["q2"] == -1)


def test_phi_breit_wigner_width():
    spec = res.state_specs()["phi"]
    mass = res.sample_parents(np.random.default_rng(2), spec, 200_000)["mass"]
    q25, q50, q75 = np.percentile(mass - spec.mass, [25, 50, 75])
    assert q75 - q25 == pytest.approx(spec.width, rel=0.1)
    assert abs(q50) < 0.05 * spec.width
    assert np.all(np.abs(mass - spec.mass) <= res.BW_HALF_WINDOW * spec.width + 1e-12)
    # the line really has tails (a Gaussian with this IQR would put nothing beyond 10 Γ)
    assert 0.01 < np.mean(np.abs(mass - spec.mass) > 10 * spec.width) < 0.05


@pytest.mark.parametrize("name", ["phi", "jpsi", "upsilon1s", "continuum"])
def test_parent_pt_spectrum_matches_analytic_cdf(name):
    spec = res.state_specs()[name]
    rng = np.random.default_rng(3)
    pt = res.sample_parents(rng, spec, 50_000)["pt"]
    assert stats.kstest(pt, lambda x: _pt_cdf(x, spec.n, spec.p0)).pvalue > 0.01
    pt_min = 15.0
    tail = res.sample_parents(rng, spec, 50_000, pt_min=pt_min)["pt"]
    assert tail.min() >= pt_min
    assert stats.kstest(tail, lambda x: _pt_cdf(x, spec.n, spec.p0, pt_min)).pvalue > 0.01
    # a wrong exponent must be rejected: the test can fail
    assert stats.kstest(tail, lambda x: _pt_cdf(x, spec.n + 0.3, spec.p0, pt_min)).pvalue < 1e-6


def test_rapidity_and_azimuth_ranges():
    rng = np.random.default_rng(4)
    parents = res.sample_parents(rng, res.state_specs()["jpsi"], 100_000, y_max=1.2)
    assert np.all(np.abs(parents["y"]) < 1.2) and np.abs(parents["y"]).max() > 1.19
    assert np.all((parents["phi"] > -np.pi) & (parents["phi"] <= np.pi))
    assert stats.kstest(parents["y"], stats.uniform(-1.2, 2.4).cdf).pvalue > 0.01
    assert stats.kstest(parents["phi"], stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 0.01
    events = res.decay_to_muons(rng, parents)
    for leg in (1, 2):
        assert np.all((events[f"phi{leg}"] > -np.pi) & (events[f"phi{leg}"] <= np.pi))


def test_decay_is_isotropic_in_the_rest_frame():
    rng = np.random.default_rng(5)
    spec = res.state_specs()["upsilon1s"]
    events = res.decay_to_muons(rng, res.sample_parents(rng, spec, 200_000, pt_min=1.0))
    (e1, *p1), (e2, *p2) = _legs(events)
    energy = e1 + e2
    momentum = np.array([a + b for a, b in zip(p1, p2, strict=True)])
    beta = momentum / energy
    beta2 = np.sum(beta**2, axis=0)
    gamma = 1.0 / np.sqrt(1.0 - beta2)
    bp = np.sum(beta * np.array(p1), axis=0)
    rest = np.array(p1) + ((gamma - 1.0) * bp / beta2 - gamma * e1) * beta
    p_rest = np.sqrt(np.sum(rest**2, axis=0))
    np.testing.assert_allclose(p_rest, np.sqrt(spec.mass**2 / 4 - M_MU**2), rtol=1e-6)
    n = p_rest.size
    for axis in (np.array([0.0, 0.0, 1.0])[:, None], momentum / np.sqrt(np.sum(momentum**2, axis=0))):
        cos_theta = np.sum(rest * axis, axis=0) / p_rest
        assert abs(cos_theta.mean()) < 4 / np.sqrt(3 * n)
        assert cos_theta.var() == pytest.approx(1 / 3, abs=4 * np.sqrt(4 / 45 / n))


def test_continuum_mass_follows_piecewise_exponential():
    rng = np.random.default_rng(6)
    mass = res.sample_parents(rng, res.state_specs()["continuum"], 400_000, m_range=(0.2, 20.0))["mass"]
    assert mass.min() >= 2 * M_MU and mass.max() <= 20.0
    for (a, b), m0 in (((1.0, 4.0), 1.5), ((6.0, 15.0), 3.5)):
        window = mass[(mass >= a) & (mass < b)]
        assert window.size > 1000
        error = window.std() / np.sqrt(window.size)
        assert abs(window.mean() - _truncated_exp_mean(a, b, m0)) < 4 * error
    # continuous density at the 5 GeV slope change: equal-width bins either side hold the analytic ratio
    below = np.sum((mass >= 4.5) & (mass < 5.0))
    above = np.sum((mass >= 5.0) & (mass < 5.5))
    expected = 1.5 * (np.exp(0.5 / 1.5) - 1.0) / (3.5 * (1.0 - np.exp(-0.5 / 3.5)))
    assert below / above == pytest.approx(expected, rel=4 * np.sqrt(1 / below + 1 / above))


def test_state_counts_are_exact():
    counts = res.state_counts(1000, {"jpsi": 2, "upsilon1s": 5, "phi": 1.0, "continuum": 2})
    assert counts == {"phi": 100, "jpsi": 200, "upsilon1s": 500, "continuum": 200}
    counts = res.state_counts(1000, {"upsilon1s": 1, "jpsi": 1, "phi": 1})  # the remainder goes to the largest
    assert counts == {"phi": 334, "jpsi": 333, "upsilon1s": 333}
    counts = res.state_counts(10, {name: 1.0 for name in res.STATES})
    assert sum(counts.values()) == 10 and min(counts.values()) >= 0
    counts = res.state_counts(5, {name: 1.0 for name in res.STATES})  # rounding up everywhere would overshoot
    assert sum(counts.values()) == 5 and min(counts.values()) >= 0
    for bad in ({"omega": 1.0}, {"jpsi": -1.0}, {"jpsi": 0.0}, {"jpsi": np.nan}):
        with pytest.raises(ValueError):
            res.state_counts(10, bad)


def test_sample_dimuons_counts_order_and_determinism():
    fractions = {"upsilon1s": 0.3, "jpsi": 0.2, "phi": 0.08, "continuum": 0.42}
    events = res.sample_dimuons(np.random.default_rng(7), 5000, fractions, batch=700)
    expected = res.state_counts(5000, fractions)
    counts = np.bincount(events["state"], minlength=len(res.STATES))
    assert {name: int(counts[res.STATES.index(name)]) for name in expected} == expected
    assert events["state"].dtype == np.int8 and events["q1"].dtype == np.int8
    assert len(set(events["state"][:100].tolist())) > 1  # shuffled, not grouped by state
    jpsi = events["state"] == res.STATES.index("jpsi")
    assert np.all(events["mass"][jpsi] == res.state_specs()["jpsi"].mass)

    again = res.sample_dimuons(np.random.default_rng(7), 5000, fractions, batch=700)
    other = res.sample_dimuons(np.random.default_rng(8), 5000, fractions, batch=700)
    assert events.keys() == again.keys() == other.keys()
    for key in events:
        np.testing.assert_array_equal(events[key], again[key])
    assert not np.array_equal(events["pt1"], other["pt1"])


def test_sample_dimuons_accept_callback_and_guard():
    def accept(events):
        return (events["parent_pt"] > 12.0) & (events["pt1"] > 3.5) & (events["pt2"] > 3.5)

    fractions = {"upsilon1s": 0.5, "jpsi": 0.5}
    events = res.sample_dimuons(np.random.default_rng(9), 2000, fractions, accept=accept, pt_min={"jpsi": 10.0})
    assert events["state"].size == 2000 and np.all(accept(events))
    assert np.bincount(events["state"]).tolist() == [0, 1000, 0, 1000]

    with pytest.raises(RuntimeError, match="'jpsi'"):
        res.sample_dimuons(
            np.random.default_rng(9), 10, {"jpsi": 1.0}, accept=lambda e: e["pt1"] < 0, batch=500, max_batches=5
        )
    with pytest.raises(ValueError, match="pt_min"):
        res.sample_dimuons(np.random.default_rng(9), 10, {"jpsi": 1.0}, pt_min={"j/psi": 10.0})
    with pytest.raises(ValueError, match="bool mask"):
        res.sample_dimuons(np.random.default_rng(9), 10, {"jpsi": 1.0}, accept=lambda e: e["pt1"])


def test_decay_rejects_mass_below_threshold():
    parents = {"pt": np.ones(2), "y": np.zeros(2), "phi": np.zeros(2), "mass": np.array([3.0, 0.2])}
    with pytest.raises(ValueError, match="threshold"):
        res.decay_to_muons(np.random.default_rng(0), parents)


def test_speed_jpsi(capsys):
    n = 1_000_000
    start = time.perf_counter()
    events = res.sample_dimuons(np.random.default_rng(10), n, {"jpsi": 1.0})
    elapsed = time.perf_counter() - start
    assert events["pt1"].size == n
    with capsys.disabled():
        print(f"\n[resonances] {n / elapsed:.3g} J/psi events/s ({2 * n / elapsed:.3g} muons/s)")
