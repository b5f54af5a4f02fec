"""Trigger turn-on curves: the fraction of offline muons whose L1 pT passes a threshold, vs offline pT.

The denominator is the matched offline muons of the skim (selected offline muons with a barrel L1 muon matched
to them, inside the skim's L1 pT window), so the curve measures the pT *assignment* — what a re-fit changes — and
not the L1 reconstruction efficiency, which the re-fit cannot change. Intervals are Clopper–Pearson (68 %).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hist.intervals import ratio_uncertainty

TURN_ON_COLUMNS = ("source", "threshold", "pt_low", "pt_high", "passed", "total", "efficiency", "err_low", "err_high")


def turn_on(offline_pt, l1_pt, threshold: float, edges) -> pd.DataFrame:
    """Efficiency of ``l1_pt >= threshold`` in bins ``edges`` of ``offline_pt`` (empty bins: NaN efficiency)."""
    offline_pt = np.asarray(offline_pt, dtype=np.float64)
    passed_mask = np.asarray(l1_pt, dtype=np.float64) >= threshold
    edges = np.asarray(edges, dtype=np.float64)
    total, _ = np.histogram(offline_pt, bins=edges)
    passed, _ = np.histogram(offline_pt[passed_mask], bins=edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = passed / total
        low, high = ratio_uncertainty(passed, total, uncertainty_type="efficiency")
    empty = total == 0
    return pd.DataFrame({
        "threshold": float(threshold), "pt_low": edges[:-1], "pt_high": edges[1:], "passed": passed, "total": total,
        "efficiency": np.where(empty, np.nan, eff), "err_low": np.where(empty, np.nan, low),
        "err_high": np.where(empty, np.nan, high),
    })  # fmt: skip


def turn_on_table(df: pd.DataFrame, thresholds, edges, sources: dict[str, str]) -> pd.DataFrame:
    """Turn-on curves of every source (name → L1 pT column) and threshold, with :data:`TURN_ON_COLUMNS`."""
    frames = [
        turn_on(df["reco_pt"], df[column], threshold, edges).assign(source=source)
        for source, column in sources.items()
        for threshold in thresholds
    ]
    return pd.concat(frames, ignore_index=True)[list(TURN_ON_COLUMNS)]


def half_point(curve: pd.DataFrame) -> float:
    """Offline pT where the curve first reaches 50 % (linear interpolation between bin centres)."""
    centres = 0.5 * (curve["pt_low"].to_numpy() + curve["pt_high"].to_numpy())
    eff = curve["efficiency"].to_numpy()
    ok = np.isfinite(eff)
    centres, eff = centres[ok], eff[ok]
    above = np.flatnonzero(eff >= 0.5)
    if len(above) == 0:
        return float("nan")
    i = above[0]
    if i == 0:
        return float(centres[0])
    return float(np.interp(0.5, [eff[i - 1], eff[i]], [centres[i - 1], centres[i]]))
