"""What a Run-3 NanoAOD holds for muons, and the exact map between its L1 floats and the uGMT hardware integers.

Branch names and types follow ``PhysicsTools/NanoAOD/python/l1trig_cff.py`` (table ``l1MuTable``) and
``muons_cff.py`` (docs/formats.md §10). Two flavours exist: ``central`` (prompt NanoAOD: floats rounded to a 12-bit
mantissa, no ``hw*`` integers, no ``tfMuonIndex``, only ``pt >= 3 && hwQual >= 8``) and ``full`` (``L1FULL`` /
``L1DPG``: the hardware integers and ``tfMuonIndex`` too).

The L1 floats are those of ``l1t::Muon`` (CMSSW scales, :mod:`l1refit.scales` convention ``"cmssw"``), made float32
and rounded by ``MiniFloatConverter::reduceMantissaToNbitsRounding``; :func:`l1_float` rebuilds them bit for bit
from the integers, so a float that is not on the hardware grid is detected, never rounded silently.
"""

from __future__ import annotations

import numpy as np

from l1refit import scales

FLAVOURS = ("central", "full")
L1_FLOAT_BITS = 12  # l1_float_precision_ of l1trig_cff.py
MUON_ANGLE_BITS = 16  # Muon_eta, Muon_phi (muons_cff.py); Muon_pt is full precision
CENTRAL_MIN_PT = 3.0  # the central table's cut: pt >= 3 && hwQual >= 8
CENTRAL_MIN_QUALITY = 8
CENTRAL_CUT = f"pt >= {CENTRAL_MIN_PT:g} GeV && hwQual >= {CENTRAL_MIN_QUALITY}"
BX_RANGE = (-2, 2)  # BXs the table keeps

EVENT = {"run": ("run", np.uint32), "lumi": ("luminosityBlock", np.uint32), "event": ("event", np.uint64),
         "bx": ("bunchCrossing", np.uint32)}  # fmt: skip
# L1Mu floats: field -> (hardware integer it encodes, scale kind)
L1_FLOATS = {
    "pt": ("hwPt", "pt"),
    "eta": ("hwEta", "eta"),
    "phi": ("hwPhi", "phi"),
    "etaAtVtx": ("hwEtaAtVtx", "eta"),
    "phiAtVtx": ("hwPhiAtVtx", "phi"),
    "ptUnconstrained": ("hwPtUnconstrained", "ptUnconstrained"),
}
L1_CENTRAL_INTS = {"hwCharge": np.int16, "hwQual": np.int32, "hwDXY": np.int16, "bx": np.int16}
L1_FULL_INTS = {"hwPt": np.int16, "hwEta": np.int16, "hwPhi": np.int16, "hwEtaAtVtx": np.int16,
                "hwPhiAtVtx": np.int16, "hwPtUnconstrained": np.int16, "tfMuonIndex": np.uint16}  # fmt: skip
MUON = {"pt": np.float32, "eta": np.float32, "phi": np.float32, "charge": np.int32, "looseId": np.bool_,
        "mediumId": np.bool_, "tightId": np.bool_, "dz": np.float32, "pfRelIso04_all": np.float32}  # fmt: skip
MUON_REQUIRED = ("pt", "eta", "phi", "charge")
ID_FIELDS = {"isLooseMuon": "looseId", "isMediumMuon": "mediumId", "isTightMuon": "tightId"}  # L1Ntuple <- NanoAOD


def round_mantissa(values, bits: int) -> np.ndarray:
    """float32 values with their mantissa rounded to ``bits`` bits, as CMSSW's ``reduceMantissaToNbitsRounding``.

    Round half up on the magnitude; a mantissa already at its largest value is not carried into the exponent (the
    CMSSW code's ``maxn`` guard), so this is not IEEE rounding in every corner, on purpose.
    """
    if not 0 < bits <= 23:
        raise ValueError(f"mantissa bits must be in 1..23, got {bits}")
    x = np.ascontiguousarray(values, dtype=np.float32)
    if bits == 23:
        return x.copy()
    shift = 23 - bits
    word = x.view(np.uint32)
    mantissa = (word & np.uint32(0x007FFFFF)) >> np.uint32(shift)
    up = ((word >> np.uint32(shift - 1)) & np.uint32(1)).astype(bool) & (mantissa < np.uint32((1 << bits) - 2))
    mantissa = mantissa + up.astype(np.uint32)
    out = (word & np.uint32(0xFF800000)) | (mantissa << np.uint32(shift))
    return out.view(np.float32)


def _physical(hw: np.ndarray, kind: str) -> np.ndarray:
    """The l1t::Muon value (CMSSW convention, float64) of hardware integers."""
    if kind == "pt":
        return scales.hw_to_pt(hw)
    if kind == "eta":
        return scales.hw_to_eta(hw)
    if kind == "phi":
        return scales.hw_to_phi(hw)
    return scales.hw_to_pt_unconstrained(hw)


def l1_float(hw, kind: str, bits: int | None = L1_FLOAT_BITS) -> np.ndarray:
    """The NanoAOD float32 of hardware integers: the CMSSW value as float32, mantissa rounded to ``bits`` (or not)."""
    value = _physical(np.asarray(hw), kind).astype(np.float32)
    return value if bits is None else round_mantissa(value, bits)


def hardware_guess(values: np.ndarray, kind: str) -> np.ndarray:
    """The nearest hardware integer of each float (int64), before the exactness check of :func:`l1_float`."""
    x = np.asarray(values, dtype=np.float64)
    if kind == "pt":
        return np.rint(x / scales.PT_LSB).astype(np.int64) + 1
    if kind == "ptUnconstrained":
        return np.where(x == 0, 0, np.rint(x) + 1).astype(np.int64)
    if kind == "eta":
        return np.rint(x / scales.ETA_LSB).astype(np.int64)
    return np.rint(x / scales.PHI_LSB_CMSSW).astype(np.int64) % scales.N_PHI  # φ in (−π, π]: negative → +576
