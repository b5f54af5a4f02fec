"""Truth-level MuOnia-like dimuon events (docs/physics.md §5), vectorised: the MuOnia legs of the chain.

Each state (φ, J/ψ, ψ(2S), Υ(1S,2S,3S), continuum) is a parent with a pT/(1+(pT/p0)²)ⁿ spectrum, flat rapidity and
azimuth, and a δ, Breit–Wigner (φ) or exponential (continuum) line shape, decayed isotropically into μ⁺μ⁻. Masses
and widths come from ``particle`` [PDG]; § numbers refer to docs/physics.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from particle import Particle

from l1refit.scales import wrap_phi

STATES = ("phi", "jpsi", "psi2s", "upsilon1s", "upsilon2s", "upsilon3s", "continuum")

MUON_MASS = Particle.from_pdgid(13).mass / 1000.0  # GeV

PDG_IDS = {"phi": 333, "jpsi": 443, "psi2s": 100443, "upsilon1s": 553, "upsilon2s": 100553, "upsilon3s": 200553}

# (n, p0 [GeV]) of dN/dpT ∝ pT/(1+(pT/p0)²)ⁿ, §5; continuum [est]: between J/ψ and Υ.
SPECTRA = {
    "phi": (3.4, 1.6),
    "jpsi": (3.15, 4.0),
    "psi2s": (3.1, 4.5),
    "upsilon1s": (3.0, 7.0),
    "upsilon2s": (3.0, 7.0),
    "upsilon3s": (3.0, 7.0),
    "continuum": (3.0, 3.0),
}

BW_HALF_WINDOW = 20.0  # Breit–Wigner truncated to m0 ± 20 Γ (keeps 98.4 % of the line, all of it above 2 m_μ)
CONTINUUM_M_BREAK = 5.0  # GeV: continuum slope changes from m0 = 1.5 to 3.5 GeV here (§5)

EventDict = dict[str, np.ndarray]


@dataclass(frozen=True)
class StateSpec:
    """One dimuon source. ``mass``/``width`` in GeV (0 for the continuum, whose shape is set in ``sample_parents``)."""

    name: str
    pdg_name: str | None
    mass: float
    width: float
    n: float
    p0: float
    line_shape: str  # "bw" | "delta" | "exp" (continuum)


@cache
def _pdg(pdgid: int) -> tuple[str, float, float]:
    particle = Particle.from_pdgid(pdgid)
    return particle.name, particle.mass / 1000.0, particle.width / 1000.0


def state_specs(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, StateSpec]:
    """Default specs of all ``STATES`` (PDG mass/width, §5 spectra); ``overrides`` = {state: {field: value}}."""
    specs = {}
    for name in STATES:
        n, p0 = SPECTRA[name]
        if name == "continuum":
            specs[name] = StateSpec(name, None, 0.0, 0.0, n, p0, "exp")
        else:
            pdg_name, mass, width = _pdg(PDG_IDS[name])
            specs[name] = StateSpec(name, pdg_name, mass, width, n, p0, "bw" if name == "phi" else "delta")
    for name, fields in (overrides or {}).items():
        if name not in specs:
            raise ValueError(f"unknown state {name!r}; allowed: {', '.join(STATES)}")
        specs[name] = dataclasses.replace(specs[name], **fields)
    return specs


# ---------------------------------------------------------------------------------------------------------------
# parents


def _sample_pt(rng: np.random.Generator, size: int, n: float, p0: float, pt_min: float) -> np.ndarray:
    """Inverse CDF of pT/(1+(pT/p0)²)ⁿ: with u = 1+(pT/p0)², the survival above pt_min is (u/u_min)^(1−n)."""
    if n <= 1.0 or p0 <= 0.0 or pt_min < 0.0:
        raise ValueError(f"pT spectrum needs n > 1, p0 > 0, pt_min >= 0 (got n={n}, p0={p0}, pt_min={pt_min})")
    u_min = 1.0 + (pt_min / p0) ** 2
    survival = 1.0 - rng.random(size)  # in (0, 1]
    u = u_min * survival ** (1.0 / (1.0 - n))
    return p0 * np.sqrt(u - 1.0)


def _sample_bw(rng: np.random.Generator, size: int, m0: float, width: float) -> np.ndarray:
    """Fixed-width relativistic BW, dN/dm ∝ m/((m²−m0²)² + m0²Γ²): a Cauchy in s = m², inverted analytically."""
    if width <= 0.0:
        raise ValueError(f"Breit–Wigner needs a positive width (got {width})")
    m_lo = max(m0 - BW_HALF_WINDOW * width, 2.0 * MUON_MASS)
    m_hi = m0 + BW_HALF_WINDOW * width
    scale = m0 * width
    t_lo, t_hi = np.arctan((m_lo**2 - m0**2) / scale), np.arctan((m_hi**2 - m0**2) / scale)
    s = m0**2 + scale * np.tan(t_lo + (t_hi - t_lo) * rng.random(size))
    return np.sqrt(s)


def _sample_continuum_mass(
    rng: np.random.Generator, size: int, m_range: tuple[float, float], m0: tuple[float, float], m_break: float
) -> np.ndarray:
    """Continuous piecewise exp(−m/m0) (slope m0[0] below m_break, m0[1] above) on m_range ∩ [2 m_μ, ∞), inverse CDF."""
    lo, hi = max(m_range[0], 2.0 * MUON_MASS), m_range[1]
    if not hi > lo:
        raise ValueError(f"continuum mass range {m_range} is empty above 2 m_mu = {2 * MUON_MASS:.4f} GeV")
    edges = [(lo, min(max(m_break, lo), hi)), (max(min(m_break, hi), lo), hi)]
    # density A_i exp(−m/m0_i), continuous at m_break; integral of piece i and its truncated-exponential inversion
    amp = (1.0, math.exp(m_break / m0[1] - m_break / m0[0]))
    integral = [amp[i] * m0[i] * (math.exp(-a / m0[i]) - math.exp(-b / m0[i])) for i, (a, b) in enumerate(edges)]
    x = rng.random(size) * (integral[0] + integral[1])
    upper = x >= integral[0]
    a = np.where(upper, edges[1][0], edges[0][0])
    slope = np.where(upper, m0[1], m0[0])
    local = np.where(upper, x - integral[0], x) / np.where(upper, amp[1], amp[0])  # ∫_a^m exp(−t/s) dt
    return a - slope * np.log1p(-local * np.exp(a / slope) / slope)


def sample_parents(
    rng: np.random.Generator,
    state: StateSpec,
    n: int,
    *,
    y_max: float = 1.5,
    pt_min: float = 0.0,
    m_range: tuple[float, float] = (0.2, 20.0),
    continuum_m0: tuple[float, float] = (1.5, 3.5),
    continuum_m_break: float = CONTINUUM_M_BREAK,
) -> EventDict:
    """Parent (pt, y, phi, mass) arrays (float64, GeV) of one state, §5 kinematics; m_range is the continuum's."""
    pt = _sample_pt(rng, n, state.n, state.p0, pt_min)
    y = rng.uniform(-y_max, y_max, n)
    phi = np.pi - 2.0 * np.pi * rng.random(n)  # (−π, π]
    if state.line_shape == "delta":
        mass = np.full(n, state.mass)
    elif state.line_shape == "bw":
        mass = _sample_bw(rng, n, state.mass, state.width)
    elif state.line_shape == "exp":
        mass = _sample_continuum_mass(rng, n, m_range, continuum_m0, continuum_m_break)
    else:
        raise ValueError(f"unknown line shape {state.line_shape!r} of state {state.name!r}")
    return {"pt": pt, "y": y, "phi": phi, "mass": mass}


# ---------------------------------------------------------------------------------------------------------------
# decay


def _boost(k: tuple[np.ndarray, ...], e_star: np.ndarray, p: tuple[np.ndarray, ...], e: np.ndarray, m: np.ndarray):
    """Rest-frame 3-momentum k (energy e_star) to the lab frame of a parent (p, e, m): k + P·((P·k)/(m(E+m)) + e*/m).

    Written without β so that a parent at rest (pT = y = 0) needs no special case.
    """
    dot = p[0] * k[0] + p[1] * k[1] + p[2] * k[2]
    coeff = (dot / (e + m) + e_star) / m
    return tuple(k_i + coeff * p_i for k_i, p_i in zip(k, p, strict=True))


def _pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    return pt, np.arcsinh(pz / pt), wrap_phi(np.arctan2(py, px))


def decay_to_muons(rng: np.random.Generator, parents: Mapping[str, np.ndarray]) -> EventDict:
    """Isotropic two-body decay (no polarisation, §5) of parents (pt, y, phi, mass) into μ⁺ (leg 1) and μ⁻ (leg 2).

    Returns pt/eta/phi/q of both legs, the true ``mass`` and the true parent kinematics ``parent_pt/y/phi``.
    With an isotropic decay the leg order carries no kinematic bias, so leg 1 is always the μ⁺.
    """
    pt, y, phi, m = (np.asarray(parents[key], dtype=np.float64) for key in ("pt", "y", "phi", "mass"))
    if np.any(m < 2.0 * MUON_MASS):
        raise ValueError(f"parent mass below the dimuon threshold 2 m_mu = {2 * MUON_MASS:.6f} GeV")
    size = m.shape[0]
    mt = np.hypot(m, pt)
    p = (pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y))
    e = mt * np.cosh(y)

    cos_theta = rng.uniform(-1.0, 1.0, size)
    azimuth = rng.uniform(-np.pi, np.pi, size)
    e_star = 0.5 * m
    p_star = np.sqrt(np.maximum(e_star**2 - MUON_MASS**2, 0.0))
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    k = (p_star * sin_theta * np.cos(azimuth), p_star * sin_theta * np.sin(azimuth), p_star * cos_theta)

    events = {}
    for leg, sign, charge in ((1, 1.0, 1), (2, -1.0, -1)):
        momentum = _boost(tuple(sign * k_i for k_i in k), e_star, p, e, m)
        events[f"pt{leg}"], events[f"eta{leg}"], events[f"phi{leg}"] = _pt_eta_phi(*momentum)
        events[f"q{leg}"] = np.full(size, charge, dtype=np.int8)
    events |= {"mass": m, "parent_pt": pt, "parent_y": y, "parent_phi": phi}
    return events


# ---------------------------------------------------------------------------------------------------------------
# event mixture


def state_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Exact per-state counts: round(n·f) with the remainder on the largest fraction (floor if that would go < 0)."""
    unknown = set(fractions) - set(STATES)
    if unknown:
        raise ValueError(f"unknown states {sorted(unknown)}; allowed: {', '.join(STATES)}")
    names = [name for name in STATES if name in fractions]
    weights = np.array([fractions[name] for name in names], dtype=np.float64)
    if n < 0 or not np.all(np.isfinite(weights)) or np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError(f"need n >= 0 and finite non-negative fractions with a positive sum (got n={n}, {fractions})")
    expected = n * weights / weights.sum()
    largest = int(np.argmax(weights))
    counts = np.rint(expected).astype(np.int64)
    counts[largest] += n - counts.sum()
    if counts[largest] < 0:  # tiny n with many states rounded up
        counts = np.floor(expected).astype(np.int64)
        counts[largest] += n - counts.sum()
    return {name: int(count) for name, count in zip(names, counts, strict=True)}


def _draw(
    rng: np.random.Generator, spec: StateSpec, index: int, size: int, pt_min: float, options: Mapping[str, Any]
) -> EventDict:
    """One batch of ``size`` events of one state, tagged with its ``STATES`` index."""
    events = decay_to_muons(rng, sample_parents(rng, spec, size, pt_min=pt_min, **options))
    events["state"] = np.full(size, index, dtype=np.int8)
    return events


def _sample_state(
    rng: np.random.Generator,
    spec: StateSpec,
    count: int,
    accept: Callable[[EventDict], np.ndarray] | None,
    *,
    batch: int,
    max_batches: int,
    pt_min: float,
    options: Mapping[str, Any],
) -> EventDict:
    """``count`` events of one state; with ``accept``, batches sized from the running efficiency until filled."""
    index = STATES.index(spec.name)
    parts = [_draw(rng, spec, index, 0, pt_min, options)]
    have = drawn = n_batches = 0
    while have < count:
        if n_batches == max_batches:
            raise RuntimeError(
                f"accept() kept only {have} of the {count} {spec.name!r} events wanted after {max_batches} batches "
                f"({drawn} draws): loosen the selection, raise pt_min for this state, or raise max_batches"
            )
        if accept is None:
            size = min(batch, count - have)
        else:
            efficiency = have / drawn if drawn else 1.0
            size = min(batch, max(1024, math.ceil(1.2 * (count - have) / max(efficiency, 1.0 / batch))))
        events = _draw(rng, spec, index, size, pt_min, options)
        if accept is not None:
            mask = np.asarray(accept(events))
            if mask.dtype != np.bool_ or mask.shape != (size,):
                raise ValueError(f"accept() must return a bool mask of shape ({size},), got {mask.dtype} {mask.shape}")
            events = {key: value[mask] for key, value in events.items()}
        parts.append(events)
        have += events["state"].shape[0]
        drawn += size
        n_batches += 1
    return {key: np.concatenate([part[key] for part in parts])[:count] for key in parts[0]}


def sample_dimuons(
    rng: np.random.Generator,
    n: int,
    fractions: Mapping[str, float],
    *,
    accept: Callable[[EventDict], np.ndarray] | None = None,
    specs: Mapping[str, StateSpec] | None = None,
    batch: int = 1 << 18,
    max_batches: int = 1000,
    pt_min: float | Mapping[str, float] = 0.0,
    parent_options: Mapping[str, Any] | None = None,
) -> EventDict:
    """``n`` dimuon events mixed by ``fractions`` (exact counts, ``state_counts``), in a seed-deterministic shuffle.

    ``accept(events) -> bool mask`` is applied per state and batch (a batch carries every output key) until each
    state has its quota — a truth-level stand-in for the §5 HLT-like selections; ``pt_min`` (one value or per state)
    restricts the parent pT spectrum exactly so that such selections do not waste draws. ``parent_options`` go to
    ``sample_parents`` (y_max, m_range, continuum_m0, continuum_m_break). Output keys: those of ``decay_to_muons``
    plus ``state`` (int8 index into ``STATES``).
    """
    if batch < 1 or max_batches < 1:
        raise ValueError(f"batch and max_batches must be positive (got {batch}, {max_batches})")
    if isinstance(pt_min, Mapping) and not set(pt_min) <= set(STATES):
        raise ValueError(f"unknown states in pt_min: {sorted(set(pt_min) - set(STATES))}")
    specs = state_specs() if specs is None else specs
    counts = state_counts(n, fractions)
    parts = [
        _sample_state(
            rng,
            specs[name],
            count,
            accept,
            batch=batch,
            max_batches=max_batches,
            pt_min=pt_min.get(name, 0.0) if isinstance(pt_min, Mapping) else pt_min,
            options=parent_options or {},
        )
        for name, count in counts.items()
    ]
    order = rng.permutation(n)
    return {key: np.concatenate([part[key] for part in parts])[order] for key in parts[0]}
