"""Per-cell conditional estimators over the hardware-integer inputs (PHYSICS_MODEL.md §6.4).

The NN inputs (hwPt, hwEtaAtVtx, charge; φ enters only through rotational invariance, so the targets are
offsets relative to the L1 value) are discrete, so the best possible estimator of any statistic is a table of
per-cell values — a look-up table an FPGA could hold. :class:`CellTable` learns such a table, pooling sparse
cells with their neighbours (§6.4); :func:`bayes_limit` cross-fits three oracles per
variable (RMS-, core- and tail-optimal) to give the physical limit of any model trained on the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import Windows, metrics
from .scales import wrap_phi

MIN_COUNT = 20  # cells with fewer training entries defer to the next, coarser level
# Pooling of sparse cells with their neighbours (§6.4), as (hwPt group, hwEta group) sizes, finest first: along
# the input the target hardly depends on — η for φ and pT targets, pT for η targets.
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


def _targets(l1: dict, reco: dict) -> dict[str, np.ndarray]:
    """Offsets the tables learn: φ_off − φ_L1 (wrapped), η_off − η_L1, and 1/pT_off moments for pT."""
    return {"phi": wrap_phi(reco["phi"] - l1["phi"]), "eta": reco["eta"] - l1["eta"], "pt": np.log(reco["pt"])}


def _oracle_residuals(train, test, windows: Windows) -> dict[str, dict[str, np.ndarray]]:
    """Residuals on ``test`` of the RMS-, core- and tail-optimal tables fitted on ``train``."""
    x_tr = (train["hw_pt"], train["hw_eta"], train["charge"])
    x_te = (test["hw_pt"], test["hw_eta"], test["charge"])
    t_tr, t_te = _targets(train["l1"], train["reco"]), _targets(test["l1"], test["reco"])
    out: dict[str, dict[str, np.ndarray]] = {"rms": {}, "core": {}, "tail": {}}
    for var in ("phi", "eta"):
        wrap = wrap_phi if var == "phi" else (lambda d: d)
        along = "pt" if var == "eta" else "eta"
        mean = CellTable("mean", pool_along=along).fit(*x_tr, t_tr[var]).predict(*x_te)
        out["rms"][var] = wrap(mean - t_te[var])
        for name, half in (("core", windows.core[var]), ("tail", windows.tail[var])):
            start = CellTable("window", 2 * half, pool_along=along).fit(*x_tr, t_tr[var]).predict(*x_te)
            out[name][var] = wrap(start + half - t_te[var])
    y_tr, y_te = np.exp(t_tr["pt"]), np.exp(t_te["pt"])
    inv1 = CellTable("mean").fit(*x_tr, 1.0 / y_tr).predict(*x_te)
    inv2 = CellTable("mean").fit(*x_tr, 1.0 / y_tr**2).predict(*x_te)
    out["rms"]["pt"] = (inv1 / inv2 - y_te) / y_te  # E[1/y]/E[1/y²] minimises E[((p − y)/y)²]
    for name, w in (("core", windows.core["pt"]), ("tail", windows.tail["pt"])):
        # |p − y|/y < w  ⇔  log y ∈ (log p − log(1+w), log p − log(1−w)): a window of fixed width in log y
        start = CellTable("window", np.log((1 + w) / (1 - w))).fit(*x_tr, t_tr["pt"]).predict(*x_te)
        p_hat = np.exp(start + np.log(1 + w))
        out[name]["pt"] = (p_hat - y_te) / y_te
    return out


def bayes_limit(sample: dict, windows: Windows | None = None, seed: int = 0) -> dict[str, float]:
    """Cross-fitted (two halves) physical-limit metrics: RMS from the RMS oracle, core and tail from theirs.

    ``sample`` holds ``hw_pt, hw_eta, charge`` (hardware inputs at the vertex) and ``l1``/``reco`` dicts of
    physical ``pt, eta, phi``.
    """
    windows = windows or Windows()
    n = sample["hw_pt"].size
    half = np.random.default_rng(seed).permutation(n) < n // 2

    def part(mask):
        return {k: ({kk: vv[mask] for kk, vv in v.items()} if isinstance(v, dict) else v[mask])
                for k, v in sample.items()}  # fmt: skip

    a, b = part(half), part(~half)
    res_ab, res_ba = _oracle_residuals(a, b, windows), _oracle_residuals(b, a, windows)
    row = {}
    for oracle in ("rms", "core", "tail"):
        res = {v: np.concatenate([res_ab[oracle][v], res_ba[oracle][v]]) for v in ("phi", "eta", "pt")}
        m = metrics(res, windows)
        row |= {k: m[k] for k in m if k.endswith(f"_{oracle}")}
    return row
