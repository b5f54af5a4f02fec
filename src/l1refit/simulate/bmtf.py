"""The BMTF measurement of a muon at the muon stations, in hardware units (docs/physics.md §1.2–§2.4).

Propagation (energy loss, range-out, bending, multiple scattering, decay kink), then φ floored at MB2, η fine or
coarse, pT from the bending with the 90 % rule, charge and quality. § numbers refer to docs/physics.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from l1refit import scales
from l1refit.simulate.detector import BARREL_ETA, OVERLAP_ETA, k_eff, ninety_percent_scale, power_law, station_eta


@dataclass
class Station:
    """Muon-system view of each muon: what exists before the track finder digitises it."""

    reach_mb2: np.ndarray  # bool
    n_stations: np.ndarray  # 2..4 where reach_mb2
    phi: np.ndarray  # φ at MB2, rad
    eta: np.ndarray  # position η at MB2 (nominal IP)
    z0: np.ndarray  # vertex z, m


def propagate(rng, pt_mu, eta, phi, q, kink, gen: dict) -> Station:
    """Energy loss factor f, stations reached, and the (φ, η) of the muon at MB2 (§1.2–§1.5)."""
    prop = gen["propagation"]
    n = pt_mu.size
    z = rng.standard_normal((3, n))
    tail = rng.exponential(1.0, n)
    f = np.maximum(1.0 + prop["eloss_sigma"] * z[0] + prop["eloss_tail"] * (tail - 1.0), 0.5)
    reach = pt_mu > prop["mb2_pt"] * f
    n_st = 2 + (pt_mu > prop["mb3_pt"] * f).astype(np.int8) + (pt_mu > prop["mb4_pt"] * f)
    ms = prop["ms_coeff"] / (np.maximum(pt_mu, 0.5) * np.sqrt(np.cosh(eta))) * z[1]
    phi_st = scales.wrap_phi(phi - q * k_eff(pt_mu, f, prop) / np.maximum(pt_mu, 0.5) + ms + kink)
    z0 = prop["z0_sigma"] * z[2]
    return Station(reach, n_st.astype(np.int8), phi_st, station_eta(eta, pt_mu, z0), z0)


def _scales_per_class(bmtf: dict) -> np.ndarray:
    """The 90 %-rule pT scale s_n for 2-, 3-, 4-station tracks, indexed by the station count."""
    key = tuple(bmtf[k] for k in ("sigma_2", "sigma_3", "sigma_4", "tail_fraction", "tail_sigma", "threshold_quantile"))
    return _scales_cached(*key)


@functools.lru_cache(maxsize=256)
def _scales_cached(s2, s3, s4, tail_fraction, tail_sigma, quantile) -> np.ndarray:
    s = np.ones(5)
    for n_st, sigma in ((2, s2), (3, s3), (4, s4)):
        s[n_st] = ninety_percent_scale(sigma, tail_fraction, tail_sigma, quantile)
    s.flags.writeable = False
    return s


def measure(rng, pt_mu, q, station: Station, gen: dict) -> dict[str, np.ndarray]:
    """Digitise the track finder's view: hwPhi, hwEta, hwPt, charge, quality, and whether a candidate exists."""
    bmtf, eta_cfg, pop = gen["bmtf"], gen["eta"], gen["population"]
    n = pt_mu.size
    z = rng.standard_normal((2, n))
    u = rng.random((6, n))
    has_l1 = station.reach_mb2 & (u[0] >= bmtf["inefficiency"])

    # φ: floor to 0.625 degree at MB2, with a small bias periodic in the 30-degree BMTF wedge (§2.2)
    wedge_phase = np.mod(station.phi + np.radians(15.0), np.radians(30.0)) / np.radians(30.0)
    phi_meas = station.phi + bmtf["sector_phase"] * np.sin(2 * np.pi * wedge_phase)
    hw_phi = scales.phi_to_hw(phi_meas, mode="floor")

    # η: fine theta-segment position, or the coarse per-chamber value nearest to the station η (§2.4)
    grid = np.sort(np.asarray(eta_cfg["coarse_grid"], dtype=np.float64)) * scales.ETA_LSB
    nearest = np.searchsorted(0.5 * (grid[1:] + grid[:-1]), np.abs(station.eta))
    coarse = np.sign(station.eta) * grid[nearest]
    fine = station.eta + eta_cfg["fine_sigma"] * z[0]
    hw_eta = scales.eta_to_hw(np.where(u[1] < eta_cfg["fine_fraction"], fine, coarse))

    # pT: 1/pT response per station class, natural flips from 1 + ε < 0, extra flips, 90 % rule scale (§2.3)
    n_st = np.clip(station.n_stations, 2, 4)
    sigma = np.array([0.0, 0.0, bmtf["sigma_2"], bmtf["sigma_3"], bmtf["sigma_4"]])[n_st]
    sigma = np.where(u[2] < bmtf["tail_fraction"], bmtf["tail_sigma"], sigma)
    response = 1.0 + sigma * z[1]
    charge = (q * np.sign(response)).astype(np.int8)
    charge = np.where(u[3] < bmtf["flip_prob"], -charge, charge).astype(np.int8)
    charge[charge == 0] = 1
    s_n = _scales_per_class(bmtf)[n_st]
    pt_l1 = s_n * pt_mu / np.maximum(np.abs(response), 1e-6)
    ghost_pt = power_law(u[5], pop["soft_alpha"], pop["soft_pt_min"], pop["pt_max"])
    pt_l1 = np.where(u[4] < bmtf["fake_fraction"], ghost_pt, pt_l1)
    hw_pt = np.clip(scales.pt_to_hw(pt_l1), bmtf["hw_pt_min"], bmtf["hw_pt_max"]).astype(np.int16)

    abs_eta_st = np.abs(station.eta)
    return {
        "has_l1": has_l1 & (abs_eta_st < OVERLAP_ETA),
        "barrel": abs_eta_st < BARREL_ETA,
        "hwPt": hw_pt,
        "hwEta": hw_eta,
        "hwPhi": hw_phi,
        "charge": charge,
        "hwQual": (11 + station.n_stations).astype(np.int16),
    }
