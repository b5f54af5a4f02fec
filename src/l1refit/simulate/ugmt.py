"""uGMT extrapolation of track-finder coordinates to the vertex (docs/physics.md §1.6).

Two 4-bit LUTs addressed by the 7-bit pT and the 5-bit |η| index give Δφ and Δη. They are re-created with the
l1tMuonTools recipe from a flat-1/pT particle gun through the same detector chain, never fitted to the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

from l1refit import scales
from l1refit.simulate.bmtf import measure, propagate

PT_BITS, ETA_BITS, OUT_BITS = 7, 5, 4
PHI_OUT_SHIFT = 2
FIT_PT_RANGE = (4.0, 64.0)
_N_ETA, _N_PT, _OUT_MAX = 1 << ETA_BITS, 1 << PT_BITS, (1 << OUT_BITS) - 1


@dataclass(frozen=True)
class Luts:
    """The two extrapolation LUTs, indexed [etaRed, ptRed] (5-bit |η| index, 7-bit pT)."""

    dphi: np.ndarray  # uint8 in 0..15, in units of 4 hwPhi
    deta: np.ndarray  # uint8 in 0..15, in hwEta units


def _power(pt, a, b, c):
    return a * np.power(pt, -b) + c


def _fit_table(eta_red, hw_pt, delta, lsb_out: float, p0, rounding: str = "floor") -> np.ndarray:
    """Fit a·pT^-b + c per η index on the profile in hwPt and floor (or round: ``rounding`` "nearest") it into a
    4-bit table (the nearest fitted η index where a fit is empty)."""
    pt_of_red = np.maximum((np.arange(_N_PT) - 1) * scales.PT_LSB, scales.PT_LSB)
    table = np.full((_N_ETA, _N_PT), -1, np.int16)
    in_range = (hw_pt >= 1 + FIT_PT_RANGE[0] / scales.PT_LSB) & (hw_pt < 1 + FIT_PT_RANGE[1] / scales.PT_LSB)
    for e in range(_N_ETA):
        sel = in_range & (eta_red == e)
        if sel.sum() < 200:
            continue
        counts = np.bincount(hw_pt[sel], minlength=_N_PT)
        sums = np.bincount(hw_pt[sel], weights=delta[sel], minlength=_N_PT)
        bins = np.flatnonzero(counts >= 5)
        pt = (bins - 1) * scales.PT_LSB
        mean = sums[bins] / counts[bins]
        err = np.sqrt(np.maximum(mean, 1e-3) / counts[bins])  # weight by statistics, not exact
        try:
            params, _ = curve_fit(_power, pt, mean, p0=p0, sigma=err, maxfev=20000)
        except RuntimeError:
            continue
        scaled = _power(pt_of_red, *params) / lsb_out
        table[e] = np.clip(np.floor(scaled + 0.5) if rounding == "nearest" else np.floor(scaled), 0, _OUT_MAX)
    filled = np.flatnonzero(table[:, 0] >= 0)
    if filled.size == 0:
        raise RuntimeError("uGMT LUT fit failed in every eta bin: the LUT sample is too small")
    nearest = filled[np.abs(np.arange(_N_ETA)[:, None] - filled[None, :]).argmin(axis=1)]
    return table[nearest].astype(np.uint8)


def build_luts(gen: dict) -> Luts:
    """Re-create the LUTs for the current detector parameters from a seeded flat-1/pT particle gun.

    The l1tMuonTools recipe: a gun flat in 1/pT (1–1000 GeV) goes through the detector chain; per |η| index the mean
    of |φ_L1 − φ_gen| and of |η_L1| − |η_gen| versus L1 pT is fitted with a·pT^−b + c on 4 ≤ pT_L1 < 64 GeV, and the
    entry is clip(floor(f(pT)/LSB_out), 0, 15) (``ugmt.lut_rounding`` "nearest" rounds instead). The floor, the
    4-bit saturation and the flat-1/pT prior are exactly the learnable imperfections the network corrects.
    """
    cfg = gen["ugmt"]
    rng = np.random.default_rng(cfg["lut_seed"])
    n = int(cfg["lut_samples"])
    pt = 1.0 / rng.uniform(1e-3, 1.0, n)
    eta = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    q = rng.choice(np.array([-1, 1], np.int8), n)
    station = propagate(rng, pt, eta, phi, q, 0.0, gen)
    l1 = measure(rng, pt, q, station, gen)
    ok = station.reach_mb2 & l1["barrel"]
    hw_pt = l1["hwPt"][ok].astype(np.int64)
    eta_red = (np.abs(l1["hwEta"][ok]) >> 3) & (_N_ETA - 1)
    dphi = np.abs(scales.delta_phi(scales.hw_to_phi(l1["hwPhi"][ok], "scouting"), phi[ok]))
    deta = np.abs(scales.hw_to_eta(l1["hwEta"][ok])) - np.abs(eta[ok])
    lsb_phi = (1 << PHI_OUT_SHIFT) * scales.PHI_LSB
    return Luts(
        dphi=_fit_table(eta_red, hw_pt, dphi, lsb_phi, p0=(2.5, 1.0, 0.0), rounding=cfg["lut_rounding"]),
        deta=_fit_table(eta_red, hw_pt, deta, scales.ETA_LSB, p0=(0.1, 1.0, 0.0), rounding=cfg["lut_rounding"]),
    )


def extrapolate(hw_pt, hw_eta, hw_phi, charge, luts: Luts) -> tuple[np.ndarray, np.ndarray]:
    """(hwEtaAtVtx, hwPhiAtVtx) as the uGMT firmware (≥ 0x5000000, 2017–18) computes them.

    For hwPt < 128: Δφ is the LUT output shifted left by 2 (LSB 4 hwPhi = 43.6 mrad, at most 0.654 rad), Δη is in
    hwEta units; hwPhiAtVtx = hwPhi ± Δφ (μ+ adds), hwEtaAtVtx = hwEta − sign(hwEta)·Δη. hwPt ≥ 128 is not
    extrapolated.
    """
    hw_pt = np.asarray(hw_pt, dtype=np.int64)
    hw_eta = np.asarray(hw_eta, dtype=np.int64)
    hw_phi = np.asarray(hw_phi, dtype=np.int64)
    pt_red = hw_pt & (_N_PT - 1)
    eta_red = (np.abs(hw_eta) >> 3) & (_N_ETA - 1)
    dphi = luts.dphi[eta_red, pt_red].astype(np.int64) << PHI_OUT_SHIFT
    deta = luts.deta[eta_red, pt_red].astype(np.int64)
    low = hw_pt < _N_PT
    phi_vtx = np.where(low, np.mod(hw_phi + np.where(np.asarray(charge) > 0, dphi, -dphi), scales.N_PHI), hw_phi)
    eta_vtx = np.where(low, hw_eta - np.sign(hw_eta) * deta, hw_eta)
    return eta_vtx.astype(np.int16), phi_vtx.astype(np.int16)
