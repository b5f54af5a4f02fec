"""What every corrector learns and gives back: the L1 − offline offsets, and corrected values from predicted ones.

One definition for the network, its checkpoint and the LUT/GBDT baselines: Δφ = l1_phi − reco_phi wrapped into
(−π, π], Δη = l1_eta − reco_eta, ΔpT in GeV ("absolute", the paper's "difference") or over the L1 pT
("relative"); the corrected value is the L1 value minus the predicted offset, in float64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from l1refit.scales import wrap_phi

DEFAULT_INPUTS = ("hwPhiAtVtx", "hwEtaAtVtx", "hwPt", "charge")  # the paper's order: φ, η, pT, charge sign
PT_TARGETS = ("absolute", "relative")
OFFSET_KEYS = ("phi", "eta", "pt")  # the offsets, in the order of the network's target columns
TARGET_NAMES = ("dphi", "deta", "dpt")


def check_pt_target(pt_target: str) -> None:
    if pt_target not in PT_TARGETS:
        raise ValueError(f"pt_target: unknown value {pt_target!r}; allowed: {', '.join(PT_TARGETS)}")


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    return df[name].to_numpy(dtype=np.float64)


def features(df: pd.DataFrame, inputs: Sequence[str]) -> np.ndarray:
    """The input columns ``inputs`` of a skim table as an (N, len(inputs)) float64 array."""
    missing = [name for name in inputs if name not in df.columns]
    if missing:
        raise ValueError(f"inputs: column(s) {', '.join(missing)} not in the table")
    return np.column_stack([_column(df, name) for name in inputs])


def offsets(df: pd.DataFrame, pt_target: str = "absolute") -> dict[str, np.ndarray]:
    """The L1 − offline offsets of every row, float64, keyed ``phi, eta, pt`` (paper §3.1: what the network learns).

    ``phi``: l1_phi − reco_phi wrapped into (−π, π] (rad); ``eta``: l1_eta − reco_eta; ``pt`` by ``pt_target``:

    * ``"absolute"`` (default, the paper's literal "difference"): l1_pt − reco_pt in GeV;
    * ``"relative"``: (l1_pt − reco_pt) / l1_pt, dimensionless. The denominator is the *L1* pT, known at inference
      time, so the correction inverts exactly: pT = l1_pt · (1 − ΔpT). Needs l1_pt > 0 (true for valid muons).
    """
    check_pt_target(pt_target)
    l1_pt = _column(df, "l1_pt")
    dpt = l1_pt - _column(df, "reco_pt")
    if pt_target == "relative":
        if np.any(l1_pt <= 0):
            raise ValueError("pt_target='relative' needs l1_pt > 0 for every row")
        dpt = dpt / l1_pt
    return {
        "phi": wrap_phi(_column(df, "l1_phi") - _column(df, "reco_phi")),
        "eta": _column(df, "l1_eta") - _column(df, "reco_eta"),
        "pt": dpt,
    }


def targets(df: pd.DataFrame, pt_target: str = "absolute") -> np.ndarray:
    """The network's regression targets (N, 3): the :func:`offsets` as columns ``dphi, deta, dpt``."""
    return np.column_stack(list(offsets(df, pt_target).values()))


def corrected(df: pd.DataFrame, pred: Mapping[str, np.ndarray], pt_target: str = "absolute") -> dict[str, np.ndarray]:
    """Corrected physical ``pred_phi, pred_eta, pred_pt`` from predicted offsets ``pred`` (keys as :func:`offsets`).

    φ = wrap(l1_phi − Δφ̂) into (−π, π]; η = l1_eta − Δη̂; pT = l1_pt − ΔpT̂ ("absolute") or l1_pt·(1 − ΔpT̂)
    ("relative"). With ``pred = offsets(df)`` this gives back the offline values (up to rounding).
    """
    check_pt_target(pt_target)
    pred = {key: np.asarray(pred[key], dtype=np.float64) for key in OFFSET_KEYS}
    for key, values in pred.items():
        if values.shape != (len(df),):
            raise ValueError(f"pred[{key!r}] must have shape ({len(df)},), got {values.shape}")
    l1_pt = _column(df, "l1_pt")
    pt = l1_pt - pred["pt"] if pt_target == "absolute" else l1_pt * (1.0 - pred["pt"])
    return {
        "pred_phi": wrap_phi(_column(df, "l1_phi") - pred["phi"]),
        "pred_eta": _column(df, "l1_eta") - pred["eta"],
        "pred_pt": pt,
    }
