"""Training weights that make the training muons look like the muons a network will be applied to.

The network learns E[offset | hardware inputs] of its training population. That conditional mean depends on the
population: for a given L1 pT, the true pT of a ZeroBias muon (steeply falling spectrum) is lower on average than
that of a triggered MuOnia muon, so it bent more and its offsets are larger. Reweighting in the *inputs* (covariate
shift) cannot fix that — a flexible network learns the same conditional mean under any reweighting of its inputs.
What differs between the populations is the prior of the true kinematics; the detector response given the true muon
is the same. Weighting each training muon by the ratio of the application to the training density in its *offline*
(≈ true) pT, |η| and charge gives the weighted training sample the application population's prior, hence its
conditional offsets (docs/training.md §6). ``space="l1"`` (the ratio in L1 pT, |η|, charge) is the covariate-shift
alternative, for application data without offline muons; it is the weaker choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMNS = {"offline": ("reco_pt", "reco_eta"), "l1": ("l1_pt", "l1_eta")}


@dataclass(frozen=True)
class Reweighting:
    """Histogram density ratio in (log pT, |η|, charge): ``pt_bins`` log-spaced bins on [pt_min, pt_max] GeV
    (plus under- and overflow), ``eta_bins`` on [0, eta_max], weights capped at ``max_weight`` (× the mean)."""

    space: str = "offline"
    pt_bins: int = 40
    pt_min: float = 2.0
    pt_max: float = 60.0
    eta_bins: int = 10
    eta_max: float = 1.0
    max_weight: float = 50.0

    def __post_init__(self) -> None:
        if self.space not in COLUMNS:
            raise ValueError(f"reweight.space: {self.space!r}; allowed: {', '.join(COLUMNS)}")
        if self.pt_bins < 1 or self.eta_bins < 1 or not 0 < self.pt_min < self.pt_max or self.max_weight <= 0:
            raise ValueError(f"reweight: bad binning or cap {self}")

    def cells(self, df: pd.DataFrame) -> np.ndarray:
        """One integer per (pT bin, |η| bin, charge) cell of every row."""
        pt_col, eta_col = COLUMNS[self.space]
        missing = [c for c in (pt_col, eta_col, "charge") if c not in df.columns]
        if missing:
            raise ValueError(f"reweighting in {self.space} variables: column(s) {', '.join(missing)} missing")
        edges = np.geomspace(self.pt_min, self.pt_max, self.pt_bins + 1)
        pt = np.searchsorted(edges, df[pt_col].to_numpy(np.float64), side="right")  # 0 … pt_bins + 1
        eta = np.minimum(np.abs(df[eta_col].to_numpy(np.float64)) / self.eta_max * self.eta_bins, self.eta_bins)
        return (pt * (self.eta_bins + 1) + eta.astype(np.int64)) * 2 + (df["charge"].to_numpy() > 0)

    @property
    def n_cells(self) -> int:
        return (self.pt_bins + 2) * (self.eta_bins + 1) * 2

    def weights(self, train: pd.DataFrame, target: pd.DataFrame) -> tuple[np.ndarray, dict[str, float]]:
        """Per-row weights of ``train`` (mean 1) and a summary: the effective sample fraction (Σw)²/(N Σw²), the
        fraction of ``target`` in cells with no training muon (which no weight can represent), the capped fraction."""
        if len(train) == 0 or len(target) == 0:
            raise ValueError(f"reweighting needs rows on both sides (train {len(train)}, target {len(target)})")
        k_train, k_target = self.cells(train), self.cells(target)
        n_train = np.bincount(k_train, minlength=self.n_cells) / len(train)
        n_target = np.bincount(k_target, minlength=self.n_cells) / len(target)
        ratio = np.divide(n_target, n_train, out=np.zeros_like(n_target), where=n_train > 0)
        raw = ratio[k_train]
        cap = self.max_weight * raw.mean()
        w = np.minimum(raw, cap)
        w = w / w.mean()
        summary = {
            "effective_fraction": float(w.sum() ** 2 / (len(w) * np.sum(w * w))),
            "target_unrepresented": float(n_target[n_train == 0].sum()),
            "capped_fraction": float(np.mean(raw > cap)),
            "zero_weight_fraction": float(np.mean(w == 0)),
        }
        return w, summary
