"""Binned maximum-likelihood fits of the dimuon resonances (iminuit): peak and width, with errors, per source.

The paper's Figure 3 shows that the network's values give narrower peaks, closer to the PDG masses, than the GMT
values; these fits turn that into numbers. The model is :class:`_Model`, the procedure :func:`fit_resonance`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from iminuit import Minuit
from iminuit.cost import ExtendedBinnedNLL
from particle import Particle
from scipy.special import ndtr

from l1refit.config.loading import defaults

# PDG ids of the states of each family, ground state first.
FAMILIES: dict[str, tuple[int, ...]] = {
    "phi": (333,),
    "jpsi": (443, 100443),
    "upsilon1s": (553, 100553, 200553),
}
LABELS = {"phi": r"$\phi$", "jpsi": r"J/$\psi$", "upsilon1s": r"$\Upsilon$(1S)"}
RESULT_COLUMNS = (
    "resonance", "source", "pdg_mass", "peak", "peak_err", "width", "width_err", "shift", "signal", "signal_err",
    "significance",
    "window_low", "window_high", "entries", "valid",
)  # fmt: skip


def pdg_mass(pdgid: int) -> float:
    """The PDG mass in GeV from the ``particle`` package."""
    return Particle.from_pdgid(pdgid).mass / 1000.0


def family_masses(resonance: str) -> np.ndarray:
    if resonance not in FAMILIES:
        raise ValueError(f"unknown resonance {resonance!r}; known: {', '.join(FAMILIES)}")
    return np.array([pdg_mass(p) for p in FAMILIES[resonance]])


@dataclass
class ResonanceFit:
    """The outcome of one fit; the fitted curve is :meth:`density` (entries per GeV).

    ``peak`` and ``width`` are the ground state's Gaussian mean and σ in GeV, errors from HESSE. ``significance`` is
    the ground-state yield over its error in the wide-window fit, where the sidebands pin the background; below ~5
    the peak and width mean little (the φ at L1 resolution, typically).
    """

    resonance: str
    source: str
    pdg_mass: float
    peak: float
    peak_err: float
    width: float
    width_err: float
    signal: float
    signal_err: float
    window_low: float
    window_high: float
    entries: int
    valid: bool
    values: dict[str, float]
    significance: float = float("nan")

    @property
    def shift(self) -> float:
        """Relative distance of the fitted peak from the PDG mass."""
        return self.peak / self.pdg_mass - 1.0

    def row(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "values"}
        out["shift"] = self.shift
        return {k: out[k] for k in RESULT_COLUMNS}

    def density(self, x) -> np.ndarray:
        """Fitted signal + background in entries per GeV at ``x`` (zero outside the fit window)."""
        x = np.asarray(x, dtype=np.float64)
        model = _Model(family_masses(self.resonance), self.window_low, self.window_high)
        h = 1e-4 * (self.window_high - self.window_low)
        out = (model.cdf(x + h, *self.values.values()) - model.cdf(x - h, *self.values.values())) / (2 * h)
        return np.where((x >= self.window_low) & (x <= self.window_high), out, 0.0)


class _Model:
    """Scaled cdf of the family + background model on the window [low, high] (what ExtendedBinnedNLL needs).

    Signal: one Gaussian per state of the family, the PDG mass ratios fixed and a common relative resolution: the
    ground state has free peak μ and width σ, state i sits at μ·m_i/m_0 with width σ·m_i/m_0 (at L1 resolution the
    excited states merge into the ground state's peak, and one Gaussian would bias it upward). The ground-state
    yield is free, each excited state's yield a fraction in [0, 1] of it, which stops the family from sliding by
    one state when the peaks merge. Background: a quadratic Bernstein polynomial with non-negative coefficients
    (any smooth, positive shape from a falling continuum to a threshold rise), one event count per basis polynomial.
    """

    def __init__(self, masses: np.ndarray, low: float, high: float) -> None:
        self.ratios = masses / masses[0]
        self.low, self.high = low, high
        self.names = ("peak", "width", "n0", *(f"f{i}" for i in range(1, len(masses))), "b0", "b1", "b2")
        self._basis_x: np.ndarray | None = None  # the last x the basis was computed at (the fit's bin edges)
        self._basis: tuple[np.ndarray, ...] = ()

    def basis(self, x) -> tuple[np.ndarray, ...]:
        """The background's three basis cdfs at ``x``: integrals of 3(1-t)², 6t(1-t), 3t² from 0 to t, so each holds
        its coefficient's count of events. A fit evaluates them at the same bin edges thousands of times: they are
        kept for the last ``x`` (the same values as computing them anew, bit for bit)."""
        x = np.asarray(x)
        if self._basis_x is None or x.shape != self._basis_x.shape or not np.array_equal(x, self._basis_x):
            t = (np.clip(x, self.low, self.high) - self.low) / (self.high - self.low)
            self._basis_x, self._basis = x.copy(), (1.0 - (1.0 - t) ** 3, 3.0 * t**2 - 2.0 * t**3, t**3)
        return self._basis

    def background_cdf(self, x, b0, b1, b2):
        basis0, basis1, basis2 = self.basis(x)
        return b0 * basis0 + b1 * basis1 + b2 * basis2

    def cdf(self, x, *p):
        peak, width, n0, *rest = p
        out = self.background_cdf(x, *rest[-3:])
        for ratio, fraction in zip(self.ratios, (1.0, *rest[:-3]), strict=True):
            out = out + n0 * fraction * ndtr((x - peak * ratio) / (width * ratio))
        return out


# Default fit windows (GeV): wide enough for GMT peaks, which sit up to ~15 % high with ~5-15 % resolution.


def default_window(resonance: str) -> tuple[float, float]:
    """The schema's fit window of ``resonance`` in GeV (config ``plots.resonances``)."""
    low, high = defaults("plots")["resonances"][resonance]
    return float(low), float(high)


def _fit_once(counts, edges, masses, peak, width, fractions) -> Minuit:
    low, high = edges[0], edges[-1]
    total = float(counts.sum())
    model = _Model(masses, low, high)
    n_states = len(masses)
    start = dict(peak=peak, width=width, n0=0.5 * total / n_states, b0=total / 6, b1=total / 6, b2=total / 6)
    start.update({f"f{i}": 0.5 for i in range(1, n_states)})
    m = Minuit(ExtendedBinnedNLL(counts, edges, model.cdf), *(start[name] for name in model.names), name=model.names)
    m.limits["peak"] = (low, high)
    m.limits["width"] = (1e-3 * masses[0], 0.5 * (high - low))
    for name in model.names[2:]:
        m.limits[name] = (0, 1) if name.startswith("f") else (0, 10 * total)
    for name, value in (fractions or {}).items():
        m.values[name] = value
        m.fixed[name] = True
    m.strategy = 1
    m.migrad()
    if m.valid:
        m.hesse()
    return m


def fit_resonance(
    values,
    resonance: str,
    *,
    source: str = "",
    window: tuple[float, float] | None = None,
    bins: int = 1000,
    start_shifts: tuple[float, ...] = (-0.05, 0.0, 0.05, 0.1, 0.15),
    start_widths: tuple[float, ...] = (0.01, 0.03, 0.08, 0.15),
    fractions: dict[str, float] | None = None,
    core_sigmas: float | None = 2.5,
    core_iterations: int = 3,
) -> ResonanceFit:
    """Fit one resonance family in the dimuon masses ``values`` (GeV) with :class:`_Model` (extended binned NLL).

    First the peak is located on ``window`` (default :func:`default_window`, ``bins`` equal bins): the likelihood is
    minimised from a grid of starting points (PDG mass × (1 + shift), relative width) and the best valid minimum
    is kept, so a peak 15 % off the PDG mass or 20 times wider than the offline one is found without tuning.
    Then the fit is repeated ``core_iterations`` times on the core, from ``core_sigmas`` widths below the
    ground state to as many above the last state (within ``window``; same bin width): L1 mass peaks are not
    Gaussian far from their centre, and a Gaussian fitted over a wide window measures its tails as much as its
    core. ``core_sigmas=None`` keeps the wide-window fit. A failed fit (no
    valid minimum, or fewer than 50 entries) is returned with ``valid=False`` and NaNs rather than raised, so one
    empty resonance does not lose the others' numbers. ``fractions`` fixes the excited-state yield fractions
    (``f1``, ``f2``: yield relative to the ground state), e.g. to those measured with offline values.
    """
    masses = family_masses(resonance)
    low, high = window or default_window(resonance)
    bin_width = (high - low) / int(bins)
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]

    def histogram(lo: float, hi: float):
        edges = np.linspace(lo, hi, max(10, int(round((hi - lo) / bin_width))) + 1)
        return np.histogram(values, bins=edges)[0], edges

    counts, edges = histogram(low, high)
    best = None
    if counts.sum() >= 50:
        for shift in start_shifts:
            for rel in start_widths:
                peak = masses[0] * (1 + shift)
                m = _fit_once(counts, edges, masses, peak, rel * peak, fractions)
                if m.valid and (best is None or m.fval < best.fval):
                    best = m
    if best is None:
        nan = float("nan")
        return ResonanceFit(resonance, source, float(masses[0]), nan, nan, nan, nan, nan, nan, float(low),
                            float(high), int(counts.sum()), False, {})  # fmt: skip
    # ground-state yield over its error where the sidebands pin the background: below ~5 the peak means little
    significance = float(best.values["n0"] / best.errors["n0"]) if best.errors["n0"] > 0 else float("nan")
    # the core: refit on [peak - kσ, last state + kσ] around this source's own peak, inside the window
    last = masses[-1] / masses[0]
    for _ in range(core_iterations if core_sigmas else 0):
        peak, width = best.values["peak"], best.values["width"]
        lo, hi = max(low, peak - core_sigmas * width), min(high, last * (peak + core_sigmas * width))
        core_counts, core_edges = histogram(lo, hi)
        if core_counts.sum() < 50:
            break
        m = _fit_once(core_counts, core_edges, masses, peak, width, fractions)
        if not m.valid:
            break
        best, counts, edges = m, core_counts, core_edges
    return ResonanceFit(
        resonance=resonance,
        source=source,
        pdg_mass=float(masses[0]),
        peak=float(best.values["peak"]),
        peak_err=float(best.errors["peak"]),
        width=float(best.values["width"]),
        width_err=float(best.errors["width"]),
        signal=float(best.values["n0"]),
        signal_err=float(best.errors["n0"]),
        window_low=float(edges[0]),
        window_high=float(edges[-1]),
        entries=int(counts.sum()),
        valid=bool(best.valid and best.accurate),
        values={name: float(best.values[name]) for name in best.parameters},
        significance=significance,
    )


def excited_fractions(fit: ResonanceFit) -> dict[str, float] | None:
    """The fitted excited-state fractions of a valid fit (None otherwise)."""
    if not fit.valid:
        return None
    return {name: value for name, value in fit.values.items() if name.startswith("f")}


def fitted_windows(resonances: dict | None) -> dict:
    """The resonances of a config's ``plots.resonances`` that are fitted: those not set to null (an overlay config
    drops a resonance of the default one with ``name: null``)."""
    return {name: window for name, window in (resonances or {}).items() if window is not None}


def fit_table(
    masses_by_source: dict[str, np.ndarray], windows: dict, reference: str = "offline"
) -> tuple[pd.DataFrame, list[ResonanceFit]]:
    """Fit every resonance (``windows``: name → fit window) in every source's masses; columns :data:`RESULT_COLUMNS`.

    The masses of all sources are of the same pairs, so the share of each state is the same whatever the
    kinematics: it is measured where the states are resolved (the ``reference`` source, offline, fitted first)
    and fixed in the fits of the other sources, where merged states could otherwise trade yield against width.
    Without the reference source (scouting data) the fractions are free in every fit.
    """
    fits = []
    for resonance, window in windows.items():
        window = None if window is None else tuple(window)
        fractions = None
        if reference in masses_by_source:
            fractions = excited_fractions(fit_resonance(masses_by_source[reference], resonance, window=window))
        for source, values in masses_by_source.items():
            fixed = None if source == reference else fractions
            fits.append(fit_resonance(values, resonance, source=source, window=window, fractions=fixed))
    return pd.DataFrame([f.row() for f in fits], columns=list(RESULT_COLUMNS)), fits
