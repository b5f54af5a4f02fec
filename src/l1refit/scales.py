"""Hardware scales of uGMT output muons (docs/formats.md §1 and §2.4), vectorised.

Two conventions exist and both are needed:

``"cmssw"``
    ``l1t::Muon`` as filled by CMSSW and stored in L1Ntuples: arithmetic in double, φ with the rounded constant
    0.010908 rad and wrapped into (−π, π] (the value passes through a PtEtaPhiM Lorentz vector).
``"scouting"``
    ``l1ScoutingRun3::ugmt`` as used by the L1 scouting NanoAOD: arithmetic in float32, φ with 2π/576 and wrapped
    into [−π, π).

Physical → hardware (what a detector measurement becomes) uses, per quantity:

* pT: **floor** — ``hwPt = floor(pt / 0.5) + 1``; every hardware value stands for the bin [pt, pt + 0.5).
* φ: **floor** — the BMTF converts the MB2 segment φ with a floor to 0.625° (docs/physics.md §2.2).
* η: **round** (half away from zero, like C ``lround``) — the η assignment is a nearest-bin look-up.

Reading stored floats back to integers (``mode="round"``) must use rounding for every quantity, because the float
may sit one ULP below the exact product. The conversion functions take the mode explicitly where both make sense.
"""

from __future__ import annotations

import numpy as np

PT_LSB = 0.5
ETA_LSB = 0.087 / 8  # 0.010875
N_PHI = 576
PHI_LSB = 2 * np.pi / N_PHI  # 0.0109083 rad = 0.625 degree
PHI_LSB_CMSSW = 0.010908  # the rounded constant CMSSW uses
PT_UNCONSTRAINED_LSB = 1.0

HW_PT_MAX = 511
HW_ETA_MIN, HW_ETA_MAX = -256, 255
HW_PHI_MAX = N_PHI - 1

CONVENTIONS = ("cmssw", "scouting")


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown scale convention {convention!r}; allowed: {', '.join(CONVENTIONS)}")


def wrap_phi(phi):
    """Wrap angles into (−π, π] (the CMSSW / offline convention used for every Δφ in this project)."""
    phi = np.asarray(phi, dtype=np.float64)
    return np.pi - np.mod(np.pi - phi, 2 * np.pi)


def delta_phi(a, b):
    """``a − b`` wrapped into (−π, π]."""
    return wrap_phi(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))


# ---------------------------------------------------------------------------------------------------------------
# hardware -> physical


def hw_to_pt(hw_pt, convention: str = "cmssw"):
    """pT in GeV: ``(hwPt − 1) · 0.5``. hwPt = 0 (empty slot) maps to −0.5; callers drop empty slots first."""
    _check_convention(convention)
    hw = np.asarray(hw_pt)
    if convention == "scouting":
        return np.float32(0.5) * (hw.astype(np.float32) - np.float32(1))
    return (hw.astype(np.float64) - 1.0) * PT_LSB


def hw_to_eta(hw_eta, convention: str = "cmssw"):
    """η = hwEta · 0.010875 (same for the muon-system and the at-vertex value)."""
    _check_convention(convention)
    hw = np.asarray(hw_eta)
    if convention == "scouting":
        return np.float32(ETA_LSB) * hw.astype(np.float32)
    return hw.astype(np.float64) * ETA_LSB


def hw_to_phi(hw_phi, convention: str = "cmssw"):
    """φ in rad. cmssw: hwPhi · 0.010908 wrapped into (−π, π]; scouting: float32(2π/576) · hwPhi in [−π, π)."""
    _check_convention(convention)
    hw = np.asarray(hw_phi)
    if convention == "scouting":
        phi32 = np.float32(PHI_LSB) * hw.astype(np.float32)
        phi64 = phi32.astype(np.float64)
        return np.where(phi64 >= np.pi, phi64 - 2 * np.pi, phi64).astype(np.float32)
    phi = hw.astype(np.float64) * PHI_LSB_CMSSW
    return np.where(phi > np.pi, phi - 2 * np.pi, phi)


def hw_to_pt_unconstrained(hw_pt_unconstrained, convention: str = "cmssw"):
    """Unconstrained (displaced) pT in GeV, LSB 1 GeV. cmssw: 0 for hw = 0, else hw − 1; scouting: hw − 1 always."""
    _check_convention(convention)
    hw = np.asarray(hw_pt_unconstrained)
    if convention == "scouting":
        return hw.astype(np.float32) - np.float32(1)
    return np.where(hw == 0, 0.0, hw.astype(np.float64) - 1.0)


# ---------------------------------------------------------------------------------------------------------------
# physical -> hardware


def _round_half_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def pt_to_hw(pt, mode: str = "floor"):
    """hwPt from pT in GeV, clipped to 1..511 (511 = saturation). ``floor`` for measurements, ``round`` for floats."""
    if mode not in ("floor", "round"):
        raise ValueError(f"mode must be 'floor' or 'round', got {mode!r}")
    x = np.asarray(pt, dtype=np.float64) / PT_LSB
    hw = np.floor(x) + 1 if mode == "floor" else np.rint(x) + 1
    return np.clip(hw, 1, HW_PT_MAX).astype(np.int16)


def eta_to_hw(eta):
    """hwEta from η: nearest bin, halves away from zero, clipped to the 9-bit two's-complement range."""
    hw = _round_half_away(np.asarray(eta, dtype=np.float64) / ETA_LSB)
    return np.clip(hw, HW_ETA_MIN, HW_ETA_MAX).astype(np.int16)


def phi_to_hw(phi, mode: str = "floor", convention: str = "scouting"):
    """hwPhi in 0..575 from φ in rad (any branch of the angle).

    ``convention`` picks the LSB the float was made with (2π/576 for "scouting" and for true detector angles,
    0.010908 for CMSSW floats); ``mode`` is ``floor`` for a measurement and ``round`` to recover integers.
    """
    _check_convention(convention)
    lsb = PHI_LSB_CMSSW if convention == "cmssw" else PHI_LSB
    # both conventions wrap with the true 2π, whatever constant made the float
    x = np.mod(np.asarray(phi, dtype=np.float64), 2 * np.pi) / lsb
    if mode == "floor":
        hw = np.floor(x)
    elif mode == "round":
        hw = np.rint(x)
    else:
        raise ValueError(f"mode must be 'floor' or 'round', got {mode!r}")
    return np.mod(hw, N_PHI).astype(np.int16)
