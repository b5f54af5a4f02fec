"""Resonance fits (iminuit) on toy samples with known truth."""

import numpy as np
import pytest

from l1refit.analysis.fit import (
    FAMILIES,
    RESULT_COLUMNS,
    default_window,
    family_masses,
    fit_resonance,
    fit_table,
    pdg_mass,
)
from l1refit.config.loading import defaults


def _toy(rng, masses, peak, rel_width, yields, n_background, window):
    """Gaussian states at PDG ratios (ground state at ``peak``) on a falling exponential background."""
    ratios = np.asarray(masses) / masses[0]
    parts = [rng.normal(peak * r, rel_width * peak * r, n) for r, n in zip(ratios, yields, strict=False)]
    low, high = window
    background = low + rng.exponential(0.4 * (high - low), 3 * n_background)
    parts.append(background[background < high][:n_background])
    return np.concatenate(parts)


def test_pdg_masses_come_from_particle():
    assert pdg_mass(443) == pytest.approx(3.0969, abs=1e-4)
    assert pdg_mass(553) == pytest.approx(9.4603, abs=1e-3)
    np.testing.assert_allclose(family_masses("upsilon1s"), [9.4603, 10.0233, 10.3552], atol=2e-3)
    with pytest.raises(ValueError, match="unknown resonance 'psi3'"):
        family_masses("psi3")


@pytest.mark.parametrize(
    ("resonance", "peak", "rel_width", "yields"),
    [
        ("jpsi", 3.40, 0.12, (20000, 1500)),  # a GMT-like J/psi: 10 % high, 12 % wide, psi(2S) merged into it
        ("jpsi", 3.097, 0.007, (20000, 600)),  # offline-like
        ("upsilon1s", 10.5, 0.07, (20000, 6000, 3000)),  # the three Upsilons merged into one bump
        ("upsilon1s", 9.46, 0.006, (20000, 6000, 3000)),  # resolved
    ],
)
def test_fit_recovers_peak_and_width_of_the_ground_state(resonance, peak, rel_width, yields):
    rng = np.random.default_rng(11)
    values = _toy(rng, family_masses(resonance), peak, rel_width, yields, 15000, default_window(resonance))
    fit = fit_resonance(values, resonance, source="toy")
    assert fit.valid
    assert abs(fit.peak - peak) < max(4 * fit.peak_err, 1e-3 * peak)
    assert fit.width == pytest.approx(rel_width * peak, rel=0.08)
    assert 0 < fit.width_err < 0.05 * fit.width
    assert fit.significance > 5
    family = fit.signal * (1 + sum(v for k, v in fit.values.items() if k.startswith("f")))
    assert family == pytest.approx(sum(yields), rel=0.1)  # the core fit trades some tail yield with background
    if rel_width < 0.02:  # merged states share their yields freely; resolved ones do not
        assert fit.signal == pytest.approx(yields[0], rel=0.05)
    assert fit.shift == pytest.approx(fit.peak / fit.pdg_mass - 1)
    # the fitted curve integrates to the entries of the window
    x = np.linspace(fit.window_low, fit.window_high, 20001)
    assert np.trapezoid(fit.density(x), x) == pytest.approx(fit.entries, rel=0.02)


def test_too_few_entries_give_an_invalid_row_not_an_error():
    fit = fit_resonance(np.array([3.1, 3.2, 3.0]), "jpsi", source="GMT")
    assert not fit.valid and np.isnan(fit.peak) and fit.entries == 3


def test_fit_table_rows_and_columns():
    rng = np.random.default_rng(5)
    values = {
        "GMT": _toy(rng, family_masses("phi"), 1.13, 0.1, (8000,), 8000, default_window("phi")),
        "offline": _toy(rng, family_masses("phi"), 1.019, 0.01, (8000,), 8000, default_window("phi")),
    }
    table, fits = fit_table(values, {"phi": None})
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert list(table["source"]) == ["GMT", "offline"] and set(table["resonance"]) == {"phi"}
    assert table["valid"].all() and len(fits) == 2
    assert table.loc[0, "width"] > 5 * table.loc[1, "width"]
    assert set(FAMILIES) == set(defaults("plots")["resonances"])
