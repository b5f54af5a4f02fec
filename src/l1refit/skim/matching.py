"""One-to-one matching of L1 and offline muons at the second muon station, as the paper (§3) matches them (or at
the vertex, ``selection.match_at``).

ΔR² comes from coffea's ``delta_r`` between the L1 muon-system coordinates (``etaSt2, phiSt2``) and the offline
track propagated to station 2, Δφ wrapped; the assignment is greedy, smallest ΔR² first, vectorised over events.
The same pairs matched with every offline φ turned by π give the fake-match count of the cutflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
from coffea.nanoevents.methods import candidate

from l1refit.formats import l1ntuple
from l1refit.skim.selection import Columns, Selected, select_all

PLACES = {"station2": ("etaSt2", "phiSt2"), "vertex": ("eta", "phi")}  # matching place -> (η, φ) fields


@dataclass(frozen=True)
class Pairs:
    """Every (L1, offline) pair of a chunk as flat arrays, built once and matched twice (nominal and φ + π)."""

    n_events: int
    event: np.ndarray  # event of each pair
    a: np.ndarray  # flat position of the pair's L1 muon among the selected ones
    b: np.ndarray  # flat position of the pair's offline muon among the selected ones
    l1: ak.Array  # the pair's L1 candidate at station 2
    reco: ak.Array  # the pair's offline candidate at station 2


@dataclass(frozen=True)
class Matched:
    """The outcome of :func:`match_selected`: all pairs, their ΔR², the kept ones and the φ + π (fake) matches."""

    pairs: Pairs
    dr2: np.ndarray  # ΔR² of every pair, float32
    kept: np.ndarray  # positions (ascending) of the pairs the one-to-one matching keeps
    n_fake: int  # pairs matched when every offline phiSt2 is turned by π


def _turned(phi: np.ndarray) -> np.ndarray:
    """φ turned by π, kept in (−π, π] (up to the float's rounding of π)."""
    return np.where(phi > 0, phi - np.pi, phi + np.pi)


def _at_station2(source: Columns, positions: np.ndarray, turn: bool = False, at: str = "station2") -> ak.Array:
    """Flat coffea candidates of the muons at ``positions``, moved to station 2 by :func:`l1ntuple.at_station2`.

    ``turn`` turns their φ by π: a control sample whose matches are accidental coincidences. ``at="vertex"``
    keeps the coordinates at the vertex (``eta, phi``) instead.
    """
    eta, phi = PLACES[at]
    slim = {field: source[field][positions] for field in ("pt", "mass", "charge")}
    slim |= {"etaSt2": source[eta][positions], "phiSt2": source[phi][positions]}
    if turn:
        slim["phiSt2"] = _turned(slim["phiSt2"])
    return ak.with_name(l1ntuple.at_station2(ak.zip(slim)), l1ntuple.CANDIDATE, behavior=candidate.behavior)


def _pairs(l1: Selected, offline: Selected, at: str = "station2") -> Pairs:
    """All pairs per event (``ak.cartesian`` of the selected muons' flat ids), with both candidates at ``at``."""
    ids = [ak.unflatten(np.arange(sel.position.size), sel.num) for sel in (l1, offline)]
    pairs = ak.cartesian(ids, axis=1)
    event = np.repeat(np.arange(l1.num.size), ak.to_numpy(ak.num(pairs, axis=1)))
    a = ak.to_numpy(ak.flatten(pairs["0"], axis=1))
    b = ak.to_numpy(ak.flatten(pairs["1"], axis=1))
    l1_st2 = _at_station2(l1.source, l1.position[a], at=at)
    reco_st2 = _at_station2(offline.source, offline.position[b], at=at)
    return Pairs(l1.num.size, event, a, b, l1_st2, reco_st2)


def _dr2(l1: ak.Array, reco: ak.Array) -> np.ndarray:
    """ΔR² from coffea's ``delta_r`` (Δφ wrapped by the library), float32."""
    return np.square(ak.to_numpy(l1.delta_r(reco)).astype(np.float32))


def _greedy(event: np.ndarray, a: np.ndarray, b: np.ndarray, dr2: np.ndarray) -> np.ndarray:
    """Mask of the pairs a greedy one-to-one assignment keeps, smallest ΔR² first.

    Pairs are sorted by (event, ΔR²), ties in input order; each round keeps, in every event at once, the first
    pair whose muons ``a`` and ``b`` (flat ids) are both unused. So there are as many rounds as the busiest
    event has matches, never one per event.
    """
    alive = np.lexsort((dr2, event))
    kept = np.zeros(event.size, bool)
    used_a = np.zeros(a.max(initial=-1) + 1, bool)
    used_b = np.zeros(b.max(initial=-1) + 1, bool)
    while alive.size:
        ev = event[alive]
        first = alive[np.flatnonzero(np.r_[True, ev[1:] != ev[:-1]])]
        kept[first] = True
        used_a[a[first]] = True
        used_b[b[first]] = True
        alive = alive[~(used_a[a[alive]] | used_b[b[alive]])]
    return kept


def _assign(pairs: Pairs, dr2: np.ndarray, max_dr2: float) -> np.ndarray:
    """Positions (ascending) of the pairs kept by the one-to-one matching with ΔR² < ``max_dr2``.

    A pair whose two muons are in no other pair under the cut is kept as it is; only contested pairs go through
    :func:`_greedy`.
    """
    near = np.flatnonzero(dr2 < max_dr2)
    a, b = pairs.a[near], pairs.b[near]
    alone = (np.bincount(a)[a] == 1) & (np.bincount(b)[b] == 1)
    kept = np.zeros(dr2.size, bool)
    kept[near[alone]] = True
    contested = near[~alone]
    kept[contested[_greedy(pairs.event[contested], a[~alone], b[~alone], dr2[contested])]] = True
    return np.flatnonzero(kept)


def match_selected(l1: Selected, offline: Selected, max_dr2: float, at: str = "station2") -> Matched:
    """Match the selected muons of a chunk one-to-one at ``at`` (station2 or vertex), and again with the offline φ
    turned by π (fakes)."""
    pairs = _pairs(l1, offline, at)
    dr2 = _dr2(pairs.l1, pairs.reco)
    kept = _assign(pairs, dr2, max_dr2)
    turned = _at_station2(offline.source, offline.position[pairs.b], turn=True, at=at)
    fake = _assign(pairs, _dr2(pairs.l1, turned), max_dr2)
    return Matched(pairs, dr2, kept, int(fake.size))


def match(l1: ak.Array, offline: ak.Array, max_dr2: float) -> ak.Array:
    """Per event, the one-to-one (L1, offline) pairs with ΔR² < ``max_dr2`` at station 2.

    Returns records ``l1, reco`` (indices into each event's ``l1`` and ``offline`` lists) and ``dr2`` (float32),
    in L1-index order. ΔR is coffea's ``delta_r`` between :func:`l1ntuple.at_station2` candidates (Δφ wrapped);
    each muon is used at most once, the smallest ΔR² first (ties: lower L1 index, then lower offline index).
    """
    l1_all, offline_all = select_all(l1), select_all(offline)
    pairs = _pairs(l1_all, offline_all)
    dr2 = _dr2(pairs.l1, pairs.reco)
    kept = _assign(pairs, dr2, max_dr2)
    event = pairs.event[kept]
    l1_index = pairs.a[kept] - l1_all.source.starts[event]
    reco_index = pairs.b[kept] - offline_all.source.starts[event]
    records = {"l1": l1_index, "reco": reco_index, "dr2": dr2[kept]}
    return ak.unflatten(ak.zip(records), np.bincount(event, minlength=pairs.n_events))
