"""From a muon at the vertex to what the tracker and the muon stations see (docs/physics.md §1–§3), vectorised.

Every function draws a fixed number of variates that depends only on the array size, never on the parameters, so a
seed gives common random numbers across parameter values: smooth metrics for the calibration. § numbers refer to
docs/physics.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l1refit import scales

R_MB2 = 5.12  # m, centre of MB2 (§1.1)
R_MB1 = 4.31  # m
BARREL_ETA = 0.83  # BMTF / OMTF boundary (docs/formats.md §5)
OVERLAP_ETA = 1.24  # OMTF / EMTF boundary
INVALID = -9999.0

# helix path / radius at MB2 versus pT (§1.4 table): the position eta at the station grows at low pT
_ST_PT = np.log([3.5, 3.8, 4.2, 5, 6, 8, 10, 15, 20, 30, 45])
_ST_RATIO = np.array([1.128, 1.091, 1.065, 1.040, 1.025, 1.013, 1.008, 1.004, 1.002, 1.001, 1.001])

# offline tracker resolutions in the barrel (§3): sigma(pT)/pT and sigma(phi) versus pT
_RES_PT = np.array([4.0, 8.5, 21.0, 41.5])
_RES_SIGMA_PT = np.array([0.0085, 0.009, 0.0103, 0.013])
_RES_PHI_PT = np.array([5.0, 10.0, 17.5, 21.0])
_RES_SIGMA_PHI = np.array([4e-4, 3e-4, 2e-4, 1e-4])
_RES_SIGMA_ETA = 5e-4


def path_ratio(pt) -> np.ndarray:
    """s_T/r at MB2 (§1.4), interpolated in log pT; below 3.5 GeV continued as (3.5/pT)^3."""
    pt = np.maximum(np.asarray(pt, dtype=np.float64), 1.0)
    inside = np.interp(np.log(pt), _ST_PT, _ST_RATIO)
    below = 1.0 + 0.128 * (3.5 / pt) ** 3
    return np.where(pt < 3.5, below, inside)


def k_eff(pt, f, prop: dict) -> np.ndarray:
    """pT · |Δφ(vertex → MB2)| in rad·GeV: K_inf plus the energy-loss rise at low pT, scaled by f (§1.4)."""
    pt = np.maximum(np.asarray(pt, dtype=np.float64), 0.5)
    return prop["k_scale"] * (prop["k_inf"] + prop["k_loss"] * f * (5.0 / pt) ** 1.8)


def k_eff_mb1(pt, prop: dict) -> np.ndarray:
    """The same at MB1 (r = 4.2 m; §1.4 table): 0.2 rad·GeV less bending, nominal energy loss."""
    pt = np.maximum(np.asarray(pt, dtype=np.float64), 0.5)
    return prop["k_scale"] * (prop["k_inf"] - 0.2 + prop["k_loss"] * (5.0 / pt) ** 1.8)


def station_eta(eta, pt, z0, radius: float = R_MB2) -> np.ndarray:
    """Position η of the track at a station seen from the nominal interaction point (§1.5).

    The helix path ratio s_T/r of §1.4 (tabulated at MB2) is scaled linearly with radius for other stations;
    the vertex displacement z0 shifts the position by z0/r.
    """
    ratio = 1.0 + (path_ratio(pt) - 1.0) * radius / R_MB2
    return np.arcsinh(np.sinh(eta) * ratio + z0 / radius)


@dataclass
class Truth:
    """What the tracker sees at the vertex: the muon, or for a decay in flight the parent hadron."""

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    q: np.ndarray

    def __len__(self) -> int:
        return self.pt.size


def power_law(u, alpha, pt_min, pt_max) -> np.ndarray:
    """Inverse CDF of dN/dpT ∝ pT^-alpha on [pt_min, pt_max]."""
    a = 1.0 - alpha
    lo, hi = pt_min**a, pt_max**a
    return (lo + np.asarray(u) * (hi - lo)) ** (1.0 / a)


def offline(rng, truth: Truth, z0, reach_mb2, gen: dict) -> dict[str, np.ndarray]:
    """Offline muon (tracker track smeared per §3), its propagation to stations 1 and 2, and its IDs.

    The propagation uses the nominal mean energy loss and no scattering, as CMSSW's propagator does; it fails
    (−9999) below the MB2 range-out pT and, rarely, at random. Tight ID needs the muon to reach MB2.
    """
    off, prop = gen["offline"], gen["propagation"]
    n = len(truth)
    z = rng.standard_normal((3, n))
    u = rng.random((3, n))
    iso = rng.exponential(0.08, n)
    sigma_pt = np.interp(truth.pt, _RES_PT, _RES_SIGMA_PT) * off["pt_resolution_scale"]
    sigma_phi = np.interp(truth.pt, _RES_PHI_PT, _RES_SIGMA_PHI) * off["angle_resolution_scale"]
    pt = truth.pt * (1.0 + sigma_pt * z[0])
    phi = scales.wrap_phi(truth.phi + sigma_phi * z[1])
    eta = truth.eta + _RES_SIGMA_ETA * off["angle_resolution_scale"] * z[2]
    valid = (pt > prop["mb2_pt"]) & (u[0] >= off["propagation_failure"])
    eta_st2 = station_eta(eta, pt, z0)
    phi_st2 = scales.wrap_phi(phi - truth.q * k_eff(pt, 1.0, prop) / pt)
    phi_st1 = scales.wrap_phi(phi - truth.q * k_eff_mb1(pt, prop) / pt)
    tight = reach_mb2 & (u[1] >= off["tight_inefficiency"])
    return {
        "pt": pt, "eta": eta, "phi": phi, "charge": truth.q.astype(np.int32),
        "etaSt1": np.where(valid, station_eta(eta, pt, z0, R_MB1), INVALID),
        "phiSt1": np.where(valid, phi_st1, INVALID),
        "etaSt2": np.where(valid, eta_st2, INVALID), "phiSt2": np.where(valid, phi_st2, INVALID),
        "isLooseMuon": np.ones(n, bool), "isMediumMuon": reach_mb2 | (u[2] < 0.5), "isTightMuon": tight,
        "iso": iso,
    }  # fmt: skip


def ninety_percent_scale(sigma: float, tail_fraction: float, tail_sigma: float, quantile: float) -> float:
    """s with P(s/|1+ε| ≥ 1) = 1 − quantile for ε ~ (1−f)·N(0,σ) + f·N(0,σ_tail) (the 90 % rule, §2.3).

    Solved exactly on the mixture's CDF (no sampling): s = 1/x with P(1/|1+ε| < x) = quantile.
    """
    from scipy.optimize import brentq
    from scipy.stats import norm

    def cdf_inv_abs(x):  # P(1/|1+ε| < x) = P(|1+ε| > 1/x)
        t = 1.0 / x
        p = 0.0
        for w, s in ((1 - tail_fraction, sigma), (tail_fraction, tail_sigma)):
            p += w * (norm.sf((t - 1) / s) + norm.cdf((-t - 1) / s))
        return p - quantile

    return 1.0 / brentq(cdf_inv_abs, 1e-3, 1.0 - 1e-12)
