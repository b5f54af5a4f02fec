"""The paper's evaluation metrics (§3.2): RMS, fraction in the core, fraction in the tails, per variable.

Residuals are L1 (or corrected) minus offline: Δφ wrapped into (−π, π], Δη, and ΔpT/pT with the offline pT
in the denominator (the paper's p_Tr). Core: |Δ| < core window (strict); tail: |Δ| > tail threshold (strict,
"more than"). Core and tail are returned in percent, as the paper prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .scales import delta_phi

VARIABLES = ("phi", "eta", "pt")
METRIC_COLUMNS = tuple(f"{v}_{m}" for m in ("rms", "core", "tail") for v in VARIABLES)

# Table 2 of the paper (GMT row and the six models), in METRIC_COLUMNS order.
PAPER_TABLE2 = {
    "GMT": (0.166, 0.034, 0.274, 14.82, 4.86, 10.54, 41.25, 15.14, 44.84),
    "A": (0.120, 0.031, 0.169, 20.17, 5.28, 14.20, 27.07, 11.55, 28.29),
    "B": (0.119, 0.031, 0.167, 19.75, 5.29, 14.76, 26.79, 11.45, 26.68),
    "C": (0.119, 0.031, 0.165, 19.37, 5.29, 14.85, 26.90, 11.58, 26.62),
    "D": (0.117, 0.031, 0.167, 19.56, 5.27, 14.70, 26.73, 11.54, 26.84),
    "E": (0.118, 0.031, 0.167, 20.16, 5.34, 14.61, 26.85, 11.50, 27.04),
    "F": (0.119, 0.031, 0.167, 19.61, 5.24, 14.76, 26.89, 11.54, 26.48),
}


def paper_row(model: str) -> dict[str, float]:
    """One row of the paper's Table 2 as a {column: value} dict."""
    return dict(zip(METRIC_COLUMNS, PAPER_TABLE2[model], strict=True))


@dataclass(frozen=True)
class Windows:
    """Core half-widths and tail thresholds per variable (paper: ±8 mrad, ±0.0015, ±1 %; 0.1, 0.05, 15 %)."""

    core: dict[str, float] = field(default_factory=lambda: {"phi": 0.008, "eta": 0.0015, "pt": 0.01})
    tail: dict[str, float] = field(default_factory=lambda: {"phi": 0.1, "eta": 0.05, "pt": 0.15})

    @classmethod
    def from_config(cls, metrics_config: dict | None) -> Windows:
        cfg = metrics_config or {}
        default = cls()
        return cls(core={**default.core, **cfg.get("core", {})}, tail={**default.tail, **cfg.get("tail", {})})


def residuals(phi, eta, pt, reco_phi, reco_eta, reco_pt) -> dict[str, np.ndarray]:
    """Δφ (wrapped), Δη and ΔpT/pT of estimates against offline values."""
    reco_pt = np.asarray(reco_pt, dtype=np.float64)
    return {
        "phi": delta_phi(phi, reco_phi),
        "eta": np.asarray(eta, dtype=np.float64) - np.asarray(reco_eta, dtype=np.float64),
        "pt": (np.asarray(pt, dtype=np.float64) - reco_pt) / reco_pt,
    }


def metrics(res: dict[str, np.ndarray], windows: Windows | None = None) -> dict[str, float]:
    """The nine numbers of one Table-2 row from residuals; an empty sample is an error, not NaNs."""
    windows = windows or Windows()
    out = {}
    for var in VARIABLES:
        d = np.asarray(res[var], dtype=np.float64)
        if d.size == 0:
            raise ValueError(f"no residuals for {var}: cannot compute metrics of an empty sample")
        out[f"{var}_rms"] = float(np.sqrt(np.mean(d * d)))
        out[f"{var}_core"] = float(100.0 * np.mean(np.abs(d) < windows.core[var]))
        out[f"{var}_tail"] = float(100.0 * np.mean(np.abs(d) > windows.tail[var]))
    return {k: out[k] for k in METRIC_COLUMNS}
