"""The firmware's contract with the hardware: input bit widths, output units, and applying the outputs.

Torch-free, so that the emulator and ``refit --firmware`` load quickly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from l1refit import scales
from l1refit.deploy.fpga.fixed import FixedType
from l1refit.ml.targets import TARGET_NAMES

PHYSICS_INPUTS = ("hwPhiAtVtx", "hwEtaAtVtx", "hwPt")  # the L1 values are computed from these (onnx_export)
# Bit widths in the uGMT output word (docs/formats.md §2.1-2.2): φ at the vertex 10 bits unsigned, η at the vertex
# 9-bit two's complement, pT 9 bits unsigned; the charge, a sign bit in the word, enters the network as ±1.
INPUT_TYPES = {
    "hwPhiAtVtx": "ap_uint<10>",
    "hwPhi": "ap_uint<10>",
    "hwEtaAtVtx": "ap_int<9>",
    "hwEta": "ap_int<9>",
    "hwPt": "ap_uint<9>",
    "charge": "ap_int<2>",
    # the fake classifier's (l1refit.ml.fakeid.FAKE_FEATURES): the 4-bit quality and the neighbour features
    # (l1refit.skim.neighbours) as a neighbour stage beside the network would compute them from the BX's muons
    "hwQual": "ap_uint<4>",
    "n_l1_bx": "ap_uint<4>",  # at most 8 uGMT output muons per BX; saturated at 15 (fakeid.firmware_features)
    "near_dphi": "ap_uint<9>",  # 0..288
    "near_deta": "ap_uint<9>",  # |ΔhwEta| of two 9-bit values within the barrel
    "near_dqual": "ap_int<5>",  # −15..15
    "near_dpt": "ap_int<10>",  # −511..511
}
OUTPUTS = TARGET_NAMES  # dphi, deta, dpt


UNITS = ("physical", "hardware")


def output_scale(pt_target: str, units: str = "physical") -> tuple[float, float, float]:
    """Physical value of one output unit per output: 1 ("physical"), or the uGMT LSBs ("hardware": φ, η, pT)."""
    if units not in UNITS:
        raise ValueError(f"firmware output units: unknown value {units!r}; allowed: {', '.join(UNITS)}")
    if units == "physical":
        return (1.0, 1.0, 1.0)
    return (scales.PHI_LSB_CMSSW, scales.ETA_LSB, scales.PT_LSB if pt_target == "absolute" else 1.0)


def output_units(pt_target: str, units: str = "physical") -> dict[str, str]:
    """What one unit of each output is: rad, η, GeV (or a fraction of the L1 pT), or the uGMT LSB of each."""
    pt = "GeV" if pt_target == "absolute" else "fraction of the L1 pT"
    if units == "physical":
        return {"dphi": "rad", "deta": "eta units", "dpt": pt}
    lsb = output_scale(pt_target, units)
    pt = f"pT LSB ({lsb[2]} GeV)" if pt_target == "absolute" else pt
    return {"dphi": f"phi LSB ({lsb[0]} rad)", "deta": f"eta LSB ({lsb[1]})", "dpt": pt}


def input_types(inputs: Sequence[str], required: Sequence[str] = PHYSICS_INPUTS) -> tuple[FixedType, ...]:
    """The hardware type of every input column; a column without one, or no φ, η, pT to correct (``required``:
    what the regression's corrections apply to), is an error."""
    missing = [name for name in required if name not in inputs]
    if missing:
        raise ValueError(f"no firmware for a model without input(s) {', '.join(missing)}: its corrections apply to "
                         f"the L1 values computed from them (model inputs: {', '.join(inputs)})")  # fmt: skip
    unknown = [name for name in inputs if name not in INPUT_TYPES]
    if unknown:
        raise ValueError(f"no hardware bit width known for input(s) {', '.join(unknown)} "
                         f"(known: {', '.join(INPUT_TYPES)})")  # fmt: skip
    return tuple(FixedType.parse(INPUT_TYPES[name]) for name in inputs)


def check_hw(hw, inputs: Sequence[str], kinds: Sequence[FixedType] | None = None) -> np.ndarray:
    """``hw`` as (N, n_inputs) float64 integers, each inside its hardware type (``kinds``, by default those of
    :func:`input_types`); anything else is a ``ValueError``."""
    x = np.asarray(hw, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(inputs):
        raise ValueError(f"expected an (N, {len(inputs)}) array of hardware integers ({', '.join(inputs)}), "
                         f"got shape {x.shape}")  # fmt: skip
    for column, name, kind in zip(x.T, inputs, input_types(inputs) if kinds is None else kinds, strict=True):
        low, high = kind.bounds
        bad = (column != np.floor(column)) | (column < low) | (column > high)
        if np.any(bad):
            raise ValueError(f"input {name}: value {column[np.argmax(bad)]:g} is not an integer of {kind} "
                             f"[{low}, {high}]")  # fmt: skip
    return x


def corrected(hw, corrections: np.ndarray, inputs: Sequence[str], pt_target: str) -> np.ndarray:
    """Corrected (φ wrapped into (−π, π], η, pT in GeV) (N, 3) from the integers and the offsets, as the ONNX graph."""
    hw = np.asarray(hw, dtype=np.float64)
    i_phi, i_eta, i_pt = (list(inputs).index(name) for name in PHYSICS_INPUTS)
    d = np.asarray(corrections, dtype=np.float64)
    l1_phi = scales.wrap_phi(hw[:, i_phi] * scales.PHI_LSB_CMSSW)
    l1_pt = (hw[:, i_pt] - 1.0) * scales.PT_LSB
    pt = l1_pt - d[:, 2] if pt_target == "absolute" else l1_pt * (1.0 - d[:, 2])
    return np.column_stack([scales.wrap_phi(l1_phi - d[:, 0]), hw[:, i_eta] * scales.ETA_LSB - d[:, 1], pt])


class OutputUnits:
    """``output_scale``/``output_units`` of a firmware model or design, from its ``pt_target`` and ``units``."""

    pt_target: str
    units: str

    @property
    def output_scale(self) -> tuple[float, float, float]:
        """Physical value of one output unit, per output."""
        return output_scale(self.pt_target, self.units)

    @property
    def output_units(self) -> dict[str, str]:
        return output_units(self.pt_target, self.units)
