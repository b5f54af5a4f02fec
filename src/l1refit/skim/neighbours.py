"""Neighbour features of L1 muons: what the other selected muons of the same bunch crossing look like.

Ghosts — a second copy of one muon built by a neighbouring track-finder wedge that the uGMT cancel-out did not
remove (docs/physics.md §4.1) — sit next to a real muon with a lower quality. A fake classifier can only see that by
looking at the muon's neighbours, so every selected L1 muon gets, from the nearest other selected muon of its event
(its BX record for scouting data), in hardware units at the muon station (``hwPhi``, ``hwEta``):

- ``n_l1_bx``: the number of selected L1 muons of the event, itself included (≥ 1);
- ``near_dphi``: |ΔhwPhi| wrapped to 0..288 (576 steps around the circle); :data:`ALONE_DPHI` (288) when alone;
- ``near_deta``: |ΔhwEta|; 0 when alone;
- ``near_dqual``, ``near_dpt``: the neighbour's hwQual and hwPt minus the muon's own; 0 when alone.

"Nearest" is the smallest ΔhwPhi² + ΔhwEta² (the φ and η steps are both ≈ 0.011); ties go to the earlier muon in
the event's list, so the features do not depend on anything but the event's own muons.
"""

from __future__ import annotations

import numpy as np

PHI_STEPS = 576  # hwPhi steps around the circle (FORMATS: 2π/576)
ALONE_DPHI = PHI_STEPS // 2  # the largest possible |ΔhwPhi|: what a muon without neighbours gets
COLUMNS = {  # column: dtype
    "n_l1_bx": np.dtype("uint8"),
    "near_dphi": np.dtype("int16"),
    "near_deta": np.dtype("int16"),
    "near_dqual": np.dtype("int8"),
    "near_dpt": np.dtype("int16"),
}


def wrapped_dphi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| of two hwPhi arrays around the 576-step circle, in 0..288."""
    d = np.mod(a.astype(np.int32) - b.astype(np.int32), PHI_STEPS)
    return np.minimum(d, PHI_STEPS - d)


def neighbour_features(
    counts: np.ndarray, hw_phi: np.ndarray, hw_eta: np.ndarray, hw_qual: np.ndarray, hw_pt: np.ndarray
) -> dict[str, np.ndarray]:
    """The :data:`COLUMNS` of muons grouped in events: ``counts`` muons per event, the others flat in event order.

    Vectorised over all (muon, other muon) pairs of each event; events have a handful of muons, so the pairs stay
    few.
    """
    counts = np.asarray(counts, np.int64)
    n = int(counts.sum())
    if hw_phi.size != n:
        raise ValueError(f"counts add up to {n} muons but {hw_phi.size} were given")
    starts = np.cumsum(counts) - counts
    event = np.repeat(np.arange(counts.size), counts)
    # pairs (i, j) of one event: i runs over the muons, j over the muons of i's event
    pair_counts = counts[event]
    i = np.repeat(np.arange(n), pair_counts)
    offset = np.arange(i.size) - np.repeat(np.cumsum(pair_counts) - pair_counts, pair_counts)
    j = starts[event[i]] + offset
    other = i != j
    i, j = i[other], j[other]
    dphi = wrapped_dphi(hw_phi[i], hw_phi[j])
    deta = np.abs(hw_eta[i].astype(np.int32) - hw_eta[j].astype(np.int32))
    # nearest per i: sort by (i, distance, j) and keep the first pair of each i
    order = np.lexsort((j, dphi * dphi + deta * deta, i))
    first = order[np.r_[True, i[order][1:] != i[order][:-1]]] if order.size else order
    has, near = i[first], j[first]
    out = {
        "n_l1_bx": np.minimum(counts[event], np.iinfo(np.uint8).max),
        "near_dphi": np.full(n, ALONE_DPHI),
        "near_deta": np.zeros(n, np.int32),
        "near_dqual": np.zeros(n, np.int32),
        "near_dpt": np.zeros(n, np.int32),
    }
    out["near_dphi"][has] = dphi[first]
    out["near_deta"][has] = deta[first]
    out["near_dqual"][has] = hw_qual[near].astype(np.int32) - hw_qual[has].astype(np.int32)
    out["near_dpt"][has] = hw_pt[near].astype(np.int32) - hw_pt[has].astype(np.int32)
    return {name: out[name].astype(dtype) for name, dtype in COLUMNS.items()}
