"""Per-cell tables over the discrete hardware inputs (hwPt, hwEtaAtVtx, charge): a look-up table an FPGA could hold.

The inputs are integers, so the best estimator of any statistic of the offsets is a table of per-cell values;
:class:`CellTable` learns one, pooling sparse cells with their neighbours (docs/physics.md §6.4). The LUT baseline
and the Bayes limit (:mod:`l1refit.ml.baselines`) are built on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_COUNT = 20  # cells with fewer training entries defer to the next, coarser level
# Pooling of sparse cells with their neighbours (docs/physics.md §6.4), as (hwPt group, hwEta group) sizes, finest
# first: along the input the target hardly depends on — η for φ and pT targets, pT for η targets.
POOLING = {
    "eta": ((1, 1), (1, 4), (1, 16)),
    "pt": ((1, 1), (4, 1), (16, 1)),
}


def fine_cells(hw_pt, hw_eta, charge, pool: tuple[int, int] = (1, 1)) -> np.ndarray:
    """One integer per (hwPt // pool[0], hwEtaAtVtx // pool[1], charge) cell."""
    pt = np.asarray(hw_pt, np.int64) // pool[0]
    eta = (np.asarray(hw_eta, np.int64) + 256) // pool[1]
    return (pt * 512 + eta) * 2 + (np.asarray(charge) > 0)


def coarse_cells(hw_pt, charge) -> np.ndarray:
    """One integer per (hwPt, charge) cell: the last fallback, for η values never seen in training."""
    return np.asarray(hw_pt, np.int64) * 2 + (np.asarray(charge) > 0)


def _segments(keys: np.ndarray):
    """(sort order, unique keys, segment starts, counts) of keys."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if keys.size else np.zeros(0, int)
    counts = np.diff(np.r_[starts, keys.size])
    return order, sorted_keys[starts], starts, counts


def _cell_mean(keys, values):
    order, uniq, starts, counts = _segments(keys)
    sums = np.add.reduceat(values[order], starts) if keys.size else np.zeros(0)
    return uniq, sums / np.maximum(counts, 1), counts


def _cell_window_mode(keys, values, width: float):
    """Per cell, the start c of the window [c, c + width) holding the most values (two pointers, vectorised)."""
    order, uniq, starts, counts = _segments(keys)
    vals = values[order]
    rank = np.repeat(np.arange(uniq.size), counts)
    sub = np.lexsort((vals, rank))
    vals, rank = vals[sub], rank[sub]
    span = np.ptp(vals) + 2 * width + 1.0 if vals.size else 1.0
    combined = rank * span + vals
    inside = np.searchsorted(combined, combined + width, side="left") - np.arange(vals.size)
    best = np.lexsort((-inside, rank))  # per cell, the largest count first
    first = np.flatnonzero(np.r_[True, rank[best][1:] != rank[best][:-1]])
    return uniq, vals[best][first], counts


@dataclass
class CellTable:
    """A per-cell statistic with a coarse-cell fallback; ``kind`` is "mean" or "window" (needs ``width``)."""

    kind: str = "mean"
    width: float = 0.0
    pool_along: str = "eta"
    min_count: int = MIN_COUNT

    def _stat(self, keys, values):
        if self.kind == "mean":
            return _cell_mean(keys, values)
        return _cell_window_mode(keys, values, self.width)

    def fit(self, hw_pt, hw_eta, charge, values) -> CellTable:
        values = np.asarray(values, dtype=np.float64)
        self.pooling = POOLING[self.pool_along]
        self.levels = [self._stat(fine_cells(hw_pt, hw_eta, charge, pool), values) for pool in self.pooling]
        self.coarse = self._stat(coarse_cells(hw_pt, charge), values)
        self.default = self._stat(np.zeros(values.size, np.int64), values)[1][0]
        return self

    @staticmethod
    def _lookup(table, keys, fallback, min_count):
        uniq, stat, counts = table
        pos = np.clip(np.searchsorted(uniq, keys), 0, max(uniq.size - 1, 0))
        found = (uniq.size > 0) & (uniq[pos] == keys) & (counts[pos] >= min_count)
        return np.where(found, stat[pos], fallback)

    def predict(self, hw_pt, hw_eta, charge) -> np.ndarray:
        """The finest cell with enough training entries, pooling as ``pool_along`` says, last (hwPt, charge)."""
        out = self._lookup(self.coarse, coarse_cells(hw_pt, charge), self.default, 1)
        for pool, level in zip(self.pooling[::-1], self.levels[::-1], strict=True):
            out = self._lookup(level, fine_cells(hw_pt, hw_eta, charge, pool), out, self.min_count)
        return out
