"""Maximum-likelihood fits of dimuon resonances: peak position and width, with uncertainties (iminuit).

The paper's Figure 3 shows qualitatively that the network's corrected values give narrower dimuon peaks, closer to
the PDG masses, than the uncorrected GMT values. This module turns that into numbers.

Model (one fit per resonance *family* and per source of muon kinematics):

* signal: one Gaussian per state of the family (φ; J/ψ, ψ(2S); Υ(1S), Υ(2S), Υ(3S)), with the PDG mass ratios
  fixed and a common relative resolution: the ground state has free peak μ and width σ, state i sits at
  μ·m_i/m_0 with width σ·m_i/m_0. At L1 resolution the excited states merge into the ground state's peak; fitting
  them as one Gaussian would bias the ground state's peak and width upward. Yields are free and non-negative.
* background: an exponential in the fit window (free slope and yield).
* likelihood: extended binned Poisson likelihood (``iminuit.cost.ExtendedBinnedNLL``) on fine bins.
* window: [μ·(1 − k·σ/μ), μ_last·(1 + k·σ/μ)] with k = ``window_sigmas``, iterated from a grid of starting widths
  so the window follows the peak of each source (GMT peaks sit ~10 % high and are ~10× wider than offline ones).
  The best likelihood per unit of data among valid fits wins.

``width`` is the Gaussian σ of the ground state in GeV, ``peak`` its mean; uncertainties are the HESSE errors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from iminuit import Minuit
from iminuit.cost import ExtendedBinnedNLL
from particle import Particle
from scipy.special import ndtr

# PDG ids of the states of each family, ground state first.
FAMILIES: dict[str, tuple[int, ...]] = {
    "phi": (333,),
    "jpsi": (443, 100443),
    "upsilon1s": (553, 100553, 200553),
}
LABELS = {"phi": r"$\phi$", "jpsi": r"J/$\psi$", "upsilon1s": r"$\Upsilon$(1S)"}
RESULT_COLUMNS = (
    "resonance", "source", "pdg_mass", "peak", "peak_err", "width", "width_err", "shift", "signal", "signal_err",
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
    """The outcome of one fit; the fitted curve is :meth:`density` (entries per GeV)."""

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
    """Scaled cdf of the family + exponential model on the window [low, high] (what ExtendedBinnedNLL needs)."""

    def __init__(self, masses: np.ndarray, low: float, high: float) -> None:
        self.ratios = masses / masses[0]
        self.low, self.high = low, high
        self.names = ("peak", "width", *(f"n{i}" for i in range(len(masses))), "nbkg", "slope")

    def background_cdf(self, x, slope):
        span = self.high - self.low
        t = np.clip(x, self.low, self.high) - self.low
        if abs(slope * span) < 1e-9:
            return t / span
        return np.expm1(slope * t) / np.expm1(slope * span)

    def cdf(self, x, *p):
        peak, width, *yields = p
        nbkg, slope = yields[-2], yields[-1]
        out = nbkg * self.background_cdf(x, slope)
        for ratio, n in zip(self.ratios, yields[:-2], strict=False):
            out = out + n * ndtr((x - peak * ratio) / (width * ratio))
        return out


def _window(masses: np.ndarray, peak: float, width: float, k: float, limits: tuple[float, float]):
    ratios = masses / masses[0]
    rel = width / peak
    return max(limits[0], peak * (1 - k * rel)), min(limits[1], peak * ratios[-1] * (1 + k * rel))


def _fit_once(values, masses, peak, width, window, bin_width):
    low, high = window
    nbins = max(10, int(round((high - low) / bin_width)))
    edges = np.linspace(low, high, nbins + 1)
    counts, _ = np.histogram(values, bins=edges)
    total = counts.sum()
    if total < 20:
        return None
    model = _Model(masses, low, high)
    cost = ExtendedBinnedNLL(counts, edges, model.cdf)
    n_states = len(masses)
    start = dict(peak=peak, width=width, nbkg=0.5 * total, slope=0.0)
    start.update({f"n{i}": 0.5 * total / n_states for i in range(n_states)})
    m = Minuit(cost, *(start[name] for name in model.names), name=model.names)
    m.limits["peak"] = (low, high)
    m.limits["width"] = (1e-4 * peak, high - low)
    for i in range(n_states):
        m.limits[f"n{i}"] = (0, 10 * total)
    m.limits["nbkg"] = (0, 10 * total)
    m.limits["slope"] = (-50.0 / (high - low), 50.0 / (high - low))
    m.strategy = 1
    m.migrad()
    if m.valid:
        m.hesse()
    return m, counts, edges


def fit_resonance(
    values,
    resonance: str,
    *,
    source: str = "",
    limits: tuple[float, float] = (0.0, 20.0),
    window_sigmas: float = 3.0,
    start_widths: tuple[float, ...] = (0.01, 0.03, 0.08, 0.15),
    start_shifts: tuple[float, ...] = (0.0, 0.1),
    bins_per_sigma: float = 5.0,
) -> ResonanceFit:
    """Fit one resonance family in the dimuon masses ``values`` (GeV); see the module docstring.

    Starting points: the PDG mass times (1 + shift) for each of ``start_shifts`` and relative widths
    ``start_widths``; each start is refitted three times with the window moved to the current peak ± k·σ.
    An invalid result (no start converged) is returned with ``valid=False`` rather than raised, so one empty
    resonance does not lose the others' numbers.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    masses = family_masses(resonance)
    best = None
    for shift in start_shifts:
        for rel in start_widths:
            peak, width = masses[0] * (1 + shift), rel * masses[0] * (1 + shift)
            outcome = None
            for _ in range(3):
                window = _window(masses, peak, width, window_sigmas, limits)
                if window[1] - window[0] <= 0:
                    break
                outcome = _fit_once(values, masses, peak, width, window, width / bins_per_sigma)
                if outcome is None or not outcome[0].valid:
                    outcome = None
                    break
                peak, width = outcome[0].values["peak"], outcome[0].values["width"]
            if outcome is None:
                continue
            m, counts, edges = outcome
            # compare fits on different windows by the deviance (−2 ln of the likelihood ratio to the saturated
            # model, what the binned cost returns) per degree of freedom
            score = m.fval / max(len(counts) - m.nfit, 1)
            if best is None or score < best[0]:
                best = (score, m, counts, edges)
    if best is None:
        nan = float("nan")
        return ResonanceFit(resonance, source, float(masses[0]), nan, nan, nan, nan, nan, nan, nan, nan, 0, False, {})
    _, m, counts, edges = best
    return ResonanceFit(
        resonance=resonance,
        source=source,
        pdg_mass=float(masses[0]),
        peak=float(m.values["peak"]),
        peak_err=float(m.errors["peak"]),
        width=float(m.values["width"]),
        width_err=float(m.errors["width"]),
        signal=float(m.values["n0"]),
        signal_err=float(m.errors["n0"]),
        window_low=float(edges[0]),
        window_high=float(edges[-1]),
        entries=int(counts.sum()),
        valid=bool(m.valid and m.accurate),
        values={name: float(m.values[name]) for name in m.parameters},
    )


def fit_table(masses_by_source: dict[str, np.ndarray], resonances, **kwargs) -> tuple[pd.DataFrame, list[ResonanceFit]]:
    """Fit every resonance in every source's masses; the table has :data:`RESULT_COLUMNS`."""
    fits = [
        fit_resonance(values, resonance, source=source, **kwargs)
        for resonance in resonances
        for source, values in masses_by_source.items()
    ]
    return pd.DataFrame([f.row() for f in fits], columns=list(RESULT_COLUMNS)), fits
