"""The paper's evaluation metrics (its §3.2) and its Table 2: the one definition every table and fit uses.

Residuals are L1 (or corrected) minus offline: Δφ wrapped into (−π, π], Δη, and ΔpT/pT over the offline pT (the
paper's p_Tr). Core: |Δ| < core window; tail: |Δ| > tail threshold (both strict); core and tail in percent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from l1refit.config.loading import defaults
from l1refit.scales import delta_phi

VARIABLES = ("phi", "eta", "pt")
METRIC_COLUMNS = tuple(f"{v}_{m}" for m in ("rms", "core", "tail") for v in VARIABLES)
LOWER_IS_BETTER = {"rms": True, "core": False, "tail": True}

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


def split_column(column: str) -> tuple[str, str]:
    """Metric column to (variable, metric): ``phi_rms`` -> ``("phi", "rms")``."""
    variable, metric = column.split("_")
    return variable, metric


def paper_best_nn() -> dict[str, float]:
    """Per metric, the best of the paper's six networks (Table 2's bold values)."""
    networks = [paper_row(model) for model in PAPER_TABLE2 if model != "GMT"]
    return {
        c: (min if LOWER_IS_BETTER[split_column(c)[1]] else max)(row[c] for row in networks) for c in METRIC_COLUMNS
    }


@dataclass(frozen=True)
class Windows:
    """Core half-widths and tail thresholds per variable (paper: ±8 mrad, ±0.0015, ±1 %; 0.1, 0.05, 15 %)."""

    core: dict[str, float]
    tail: dict[str, float]

    @classmethod
    def from_config(cls, metrics_config: dict | None) -> Windows:
        """From the ``metrics:`` mapping; absent windows take the schema's defaults."""
        cfg, default = metrics_config or {}, defaults("metrics")
        return cls(core={**default["core"], **cfg.get("core", {})}, tail={**default["tail"], **cfg.get("tail", {})})


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
    windows = windows or Windows.from_config(None)
    out = {}
    for var in VARIABLES:
        d = np.asarray(res[var], dtype=np.float64)
        if d.size == 0:
            raise ValueError(f"no residuals for {var}: cannot compute metrics of an empty sample")
        out[f"{var}_rms"] = float(np.sqrt(np.mean(d * d)))
        out[f"{var}_core"] = float(100.0 * np.mean(np.abs(d) < windows.core[var]))
        out[f"{var}_tail"] = float(100.0 * np.mean(np.abs(d) > windows.tail[var]))
    return {k: out[k] for k in METRIC_COLUMNS}


def prediction_metrics(df: pd.DataFrame, windows: Windows | None = None) -> dict[str, float]:
    """The nine Table-2 numbers of the corrected values ``pred_phi, pred_eta, pred_pt`` against offline."""
    return _table_metrics(df, "pred_", windows)


def gmt_metrics(df: pd.DataFrame, windows: Windows | None = None) -> dict[str, float]:
    """The nine Table-2 numbers of the uncorrected GMT values ``l1_phi, l1_eta, l1_pt``: the reference row."""
    return _table_metrics(df, "l1_", windows)


def _table_metrics(df: pd.DataFrame, prefix: str, windows: Windows | None) -> dict[str, float]:
    estimates = [df[f"{prefix}{v}"].to_numpy() for v in VARIABLES]
    reco = [df[f"reco_{v}"].to_numpy() for v in VARIABLES]
    return metrics(residuals(*estimates, *reco), windows)
