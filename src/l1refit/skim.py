"""Skim: select barrel L1 muons and offline muons, match them one-to-one at station 2, write Parquet + a cutflow.

The paper (§3) trains on BMTF muons matched to offline muons with ΔR² = Δφ² + Δη² < 0.01 "as calculated at the
second station of the barrel muon detector", keeping 2.5 < pT < 45 GeV. Here that is, per event:

* L1 muons (``L1Mu``): BX ``bx``, BMTF (``tfMuonIndex`` in ``tf_muon_index``, FORMATS §5), ``hwQual >=
  min_quality``, ``l1_pt[0] < pt < l1_pt[1]`` (exclusive, as the paper writes it);
* offline muons (``Muon``): valid station-2 coordinates (CMSSW stores −9999 where the propagation failed), the
  ``offline_id`` flag, ``pt >= offline_min_pt``;
* ΔR² from coffea's ``delta_r`` between the L1 muon-system coordinates (``etaSt2, phiSt2`` = ``muonEta, muonPhi``)
  and the offline track propagated to station 2, Δφ wrapped; greedy one-to-one assignment, smallest ΔR² first.

Every input format goes through the same functions: scouting BX records are turned into events with an ``L1Mu``
collection and an empty ``Muon`` collection (:func:`scouting_events`). L1Ntuples give one row per matched pair;
scouting files, which have no offline muons, give the selected L1 muons (the table the exported model is applied
to), and the cutflow says so. Files are streamed chunk by chunk, so memory stays bounded whatever their size.

The cutflow (:data:`CUTFLOW`) counts events, L1 muons and offline muons after each cut, the matched pairs, and two
ratios, each a count over a denominator row:

* match efficiency: matched offline muons / selected offline muons, both inside the BMTF acceptance
  |etaSt2| < 0.83 (only there can a barrel L1 muon exist). It folds in the L1 efficiency and the L1 cuts.
* fake-match rate: pairs found when the matching is repeated with every offline ``phiSt2`` turned by π, over the
  nominal pairs. The turned muon has no L1 partner, so what matches it is an accidental coincidence at the same
  L1 and offline densities; it slightly overestimates where events hold back-to-back muons at equal η.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from coffea.nanoevents.methods import candidate

from l1refit.errors import ConfigError, FormatError
from l1refit.formats import l1ntuple, scouting
from l1refit.inspect import detect_format
from l1refit.io import atomic_path

FORMATS = ("l1ntuple", *scouting.FORMATS)
OFFLINE_IDS = {"tight": "isTightMuon", "medium": "isMediumMuon", "loose": "isLooseMuon", "none": None}
BMTF_ETA = 0.83  # |η| edge of the BMTF region (FORMATS §5): the acceptance of the match-efficiency denominator
DEFAULT_STEP_SIZE = 200_000
SCOUTING_NOTE = "no offline muons in scouting data: L1 table only"
PARQUET = {"compression": "snappy", "use_dictionary": False}  # the fastest to write; dictionaries save little here


# ---------------------------------------------------------------------------------------------------------------
# selection


@dataclass(frozen=True)
class Selection:
    """The cuts of the ``selection:`` config key; each one is a key, the defaults follow the paper where it speaks.

    ``min_quality`` defaults to 12, the uGT single-muon working point (``hwQual >= 12``; the L1T DQM's tightest
    class, FORMATS §6). The paper does not state a quality cut; 12 keeps the well-measured tracks (lower classes
    are double-muon-only candidates with poorer φ/pT) that a single-muon scouting analysis would use. Set 0 to
    keep every quality.
    """

    bx: int = 0
    tf_muon_index: tuple[int, int] = (36, 71)
    min_quality: int = 12
    l1_pt: tuple[float, float] = (2.5, 45.0)
    match_dr2: float = 0.01
    offline_id: str = "tight"
    offline_min_pt: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.tf_muon_index
        if not 0 <= lo <= hi:
            raise ConfigError(f"selection.tf_muon_index: need 0 <= low <= high, got {list(self.tf_muon_index)}")
        if not 0 <= self.min_quality <= 15:
            raise ConfigError(f"selection.min_quality: hwQual is 4 bits (0..15), got {self.min_quality}")
        if not self.l1_pt[0] < self.l1_pt[1]:
            raise ConfigError(f"selection.l1_pt: need low < high, got {list(self.l1_pt)}")
        if not self.match_dr2 > 0:
            raise ConfigError(f"selection.match_dr2: must be positive, got {self.match_dr2}")
        if self.offline_id not in OFFLINE_IDS:
            raise ConfigError(f"selection.offline_id: {self.offline_id!r} is not one of {', '.join(OFFLINE_IDS)}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Selection:
        """Build from the ``selection:`` mapping; absent keys take the defaults, unknown keys are an error."""
        config = dict(config or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"selection.{unknown[0]}: unknown key; allowed: {', '.join(sorted(known))}")
        for key in ("tf_muon_index", "l1_pt"):
            if key in config:
                config[key] = tuple(config[key])
        return cls(**config)


class _Columns:
    """A per-event collection flattened once, its fields as flat NumPy arrays (no copy for what the readers build)."""

    def __init__(self, collection: ak.Array):
        self.num = ak.to_numpy(ak.num(collection, axis=1))
        self.flat = ak.flatten(collection, axis=1)
        self._numpy: dict[str, np.ndarray] = {}

    def __getitem__(self, field: str) -> np.ndarray:
        if field not in self._numpy:
            self._numpy[field] = ak.to_numpy(self.flat[field])
        return self._numpy[field]

    @functools.cached_property
    def starts(self) -> np.ndarray:
        """Flat position of each event's first muon."""
        return np.cumsum(self.num) - self.num


@dataclass(frozen=True)
class Selected:
    """The muons of a collection that passed a selection, and how many were left after each step.

    ``position`` is each selected muon's flat position in the chunk's collection (``source``), ``num`` the count
    per event; ``muons`` and ``index`` (position in the event's original list) are the per-event views.
    """

    source: _Columns
    position: np.ndarray
    num: np.ndarray
    counts: dict[str, int]

    @property
    def muons(self) -> ak.Array:
        """The selected muons, per event (the collection's records)."""
        return ak.unflatten(self.source.flat[self.position], self.num)

    @property
    def index(self) -> ak.Array:
        """Per event: each selected muon's index in the event's original list."""
        event = np.repeat(np.arange(self.num.size), self.num)
        return ak.unflatten(self.position - self.source.starts[event], self.num)


def _apply(source: _Columns, first: str, steps: Mapping[str, np.ndarray | None]) -> Selected:
    """Apply flat masks cumulatively (None: the step keeps everything), counting the survivors after each step."""
    offsets = np.concatenate([[0], np.cumsum(source.num)])
    counts = {first: int(offsets[-1])}
    mask = np.ones(offsets[-1], bool)
    for name, step in steps.items():
        if step is not None:
            mask &= step
        counts[name] = int(np.count_nonzero(mask))
    passed = np.concatenate([[0], np.cumsum(mask)])
    return Selected(source, np.flatnonzero(mask), passed[offsets[1:]] - passed[offsets[:-1]], counts)


def select_l1(events: ak.Array, sel: Selection) -> Selected:
    """The L1 muons of BX ``sel.bx`` from the BMTF with ``hwQual >= min_quality`` and ``low < pt < high``."""
    l1 = _Columns(events["L1Mu"])
    lo, hi = sel.tf_muon_index
    pt_lo, pt_hi = sel.l1_pt
    tf_index, pt = l1["tfMuonIndex"], l1["pt"]
    steps = {
        "l1_bx": l1["bx"] == sel.bx,
        "l1_barrel": (tf_index >= lo) & (tf_index <= hi),
        "l1_quality": l1["hwQual"] >= sel.min_quality,
        "l1_pt": (pt > pt_lo) & (pt < pt_hi),
    }
    return _apply(l1, "l1_all", steps)


def select_offline(events: ak.Array, sel: Selection) -> Selected:
    """Offline muons with valid station-2 coordinates, the configured ID and ``pt >= offline_min_pt``."""
    muon = _Columns(events["Muon"])
    invalid = l1ntuple.STATION_INVALID
    id_field = OFFLINE_IDS[sel.offline_id]
    steps = {
        "offline_st2_valid": (muon["etaSt2"] != invalid) & (muon["phiSt2"] != invalid),
        "offline_id": None if id_field is None else muon[id_field],
        "offline_pt": muon["pt"] >= sel.offline_min_pt,
    }
    return _apply(muon, "offline_all", steps)


def _everything(collection: ak.Array) -> Selected:
    """A selection that keeps every muon."""
    source = _Columns(collection)
    return Selected(source, np.arange(source.num.sum()), source.num, {})


# ---------------------------------------------------------------------------------------------------------------
# matching

_SLIM = ("pt", "mass", "charge", "etaSt2", "phiSt2")  # what a coffea candidate at station 2 needs


@dataclass(frozen=True)
class _Pairs:
    """Every (L1, offline) pair of a chunk as flat arrays, built once and matched twice (nominal and φ + π)."""

    n_events: int
    event: np.ndarray  # event of each pair
    a: np.ndarray  # flat position of the pair's L1 muon among the selected ones
    b: np.ndarray  # flat position of the pair's offline muon among the selected ones
    l1: ak.Array  # the pair's L1 candidate at station 2
    reco: ak.Array  # the pair's offline candidate at station 2


def _turned(phi: np.ndarray) -> np.ndarray:
    """φ turned by π, kept in (−π, π] (up to the float's rounding of π)."""
    return np.where(phi > 0, phi - np.pi, phi + np.pi)


def _at_station2(source: _Columns, positions: np.ndarray, turn: bool = False) -> ak.Array:
    """Flat coffea candidates of the muons at ``positions``, moved to station 2 by :func:`l1ntuple.at_station2`.

    ``turn`` turns their ``phiSt2`` by π: a control sample whose matches are accidental coincidences.
    """
    slim = {field: source[field][positions] for field in _SLIM}
    if turn:
        slim["phiSt2"] = _turned(slim["phiSt2"])
    return ak.with_name(l1ntuple.at_station2(ak.zip(slim)), l1ntuple.CANDIDATE, behavior=candidate.behavior)


def _pairs(l1: Selected, offline: Selected) -> _Pairs:
    """All pairs per event (``ak.cartesian`` of the selected muons' flat ids), with both candidates at station 2."""
    ids = [ak.unflatten(np.arange(sel.position.size), sel.num) for sel in (l1, offline)]
    pairs = ak.cartesian(ids, axis=1)
    event = np.repeat(np.arange(l1.num.size), ak.to_numpy(ak.num(pairs, axis=1)))
    a = ak.to_numpy(ak.flatten(pairs["0"], axis=1))
    b = ak.to_numpy(ak.flatten(pairs["1"], axis=1))
    l1_st2 = _at_station2(l1.source, l1.position[a])
    reco_st2 = _at_station2(offline.source, offline.position[b])
    return _Pairs(l1.num.size, event, a, b, l1_st2, reco_st2)


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


def _assign(pairs: _Pairs, dr2: np.ndarray, max_dr2: float) -> np.ndarray:
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


def match(l1: ak.Array, offline: ak.Array, max_dr2: float) -> ak.Array:
    """Per event, the one-to-one (L1, offline) pairs with ΔR² < ``max_dr2`` at station 2.

    Returns records ``l1, reco`` (indices into each event's ``l1`` and ``offline`` lists) and ``dr2`` (float32),
    in L1-index order. ΔR is coffea's ``delta_r`` between :func:`l1ntuple.at_station2` candidates (Δφ wrapped);
    each muon is used at most once, the smallest ΔR² first (ties: lower L1 index, then lower offline index).
    """
    l1_all, offline_all = _everything(l1), _everything(offline)
    pairs = _pairs(l1_all, offline_all)
    dr2 = _dr2(pairs.l1, pairs.reco)
    kept = _assign(pairs, dr2, max_dr2)
    event = pairs.event[kept]
    l1_index = pairs.a[kept] - l1_all.source.starts[event]
    reco_index = pairs.b[kept] - offline_all.source.starts[event]
    records = {"l1": l1_index, "reco": reco_index, "dr2": dr2[kept]}
    return ak.unflatten(ak.zip(records), np.bincount(event, minlength=pairs.n_events))


# ---------------------------------------------------------------------------------------------------------------
# skim table of one chunk

_U1, _U2, _U4, _U8 = (np.dtype(t) for t in ("uint8", "uint16", "uint32", "uint64"))
_I1, _I2, _F4 = np.dtype("int8"), np.dtype("int16"), np.dtype("float32")

_EVENT_COLUMNS = {
    "l1ntuple": {"run": _U4, "lumi": _U4, "event": _U8},
    "scouting": {"run": _U4, "orbit": _U4, "bx": _U4},
}
_L1_COLUMNS = {  # skim column: (L1Mu field, dtype)
    "hwPt": ("hwPt", _I2),
    "hwEtaAtVtx": ("hwEtaAtVtx", _I2),
    "hwPhiAtVtx": ("hwPhiAtVtx", _I2),
    "hwEta": ("hwEta", _I2),
    "hwPhi": ("hwPhi", _I2),
    "charge": ("charge", _I1),
    "hwQual": ("hwQual", _U1),
    "tfMuonIndex": ("tfMuonIndex", _U1),
    "hwPtUnconstrained": ("hwPtUnconstrained", _I2),
    "hwDXY": ("hwDXY", _U1),
    "l1_pt": ("pt", _F4),
    "l1_eta": ("eta", _F4),
    "l1_phi": ("phi", _F4),
    "l1_etaSt2": ("etaSt2", _F4),
    "l1_phiSt2": ("phiSt2", _F4),
}
_RECO_COLUMNS = {  # skim column: (Muon field, dtype)
    "reco_pt": ("pt", _F4),
    "reco_eta": ("eta", _F4),
    "reco_phi": ("phi", _F4),
    "reco_charge": ("charge", _I1),
    "reco_etaSt2": ("etaSt2", _F4),
    "reco_phiSt2": ("phiSt2", _F4),
}


def columns(l1_only: bool = False) -> dict[str, np.dtype]:
    """The skim columns and dtypes: matched pairs (L1Ntuples), or selected L1 muons only (``l1_only``, scouting).

    ``part`` is the input file's index in its dataset and ``entry`` the event's entry in that file, so
    ``(part, entry)`` identifies an event even where ``(run, lumi, event)`` repeat; ``l1_index`` and
    ``reco_index`` are the muons' positions in the event's original lists.
    """
    event = _EVENT_COLUMNS["scouting" if l1_only else "l1ntuple"]
    out = {**event, "part": _U2} | ({} if l1_only else {"entry": _U4})
    out |= {name: dtype for name, (_, dtype) in _L1_COLUMNS.items()} | {"l1_index": _U1}
    if not l1_only:
        out |= {name: dtype for name, (_, dtype) in _RECO_COLUMNS.items()} | {"reco_index": _U1, "dr2": _F4}
    return out


def schema(l1_only: bool = False, metadata: Mapping[str, str] | None = None) -> pa.Schema:
    """The Parquet schema of :func:`columns`, with optional key-value metadata (provenance)."""
    return pa.schema([(name, pa.from_numpy_dtype(dtype)) for name, dtype in columns(l1_only).items()], metadata)


def _rows(
    l1: Selected, offline: Selected, pairs: _Pairs, kept: np.ndarray, dr2: np.ndarray, l1_only: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(chunk event of each row, per-muon skim columns): matched pairs, or every selected L1 muon (``l1_only``)."""
    if l1_only:
        event = np.repeat(np.arange(l1.num.size), l1.num)
        l1_row = np.arange(l1.position.size)
    else:
        event, l1_row = pairs.event[kept], pairs.a[kept]
    l1_at = l1.position[l1_row]
    out = {name: l1.source[field][l1_at] for name, (field, _) in _L1_COLUMNS.items()}
    out["l1_index"] = l1_at - l1.source.starts[event]
    if not l1_only:
        reco_at = offline.position[pairs.b[kept]]
        out |= {name: offline.source[field][reco_at] for name, (field, _) in _RECO_COLUMNS.items()}
        out["reco_index"] = reco_at - offline.source.starts[event]
        out["dr2"] = dr2[kept]
    return event, out


def skim_chunk(
    events: ak.Array, sel: Selection, *, l1_only: bool = False, part: int = 0, first_entry: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """One chunk of events -> (the skim columns of :func:`columns`, its cutflow counts).

    Rows are matched pairs, or with ``l1_only`` every selected L1 muon. The matching runs in both cases (same
    code path); ``first_entry`` is the file entry of the chunk's first event.
    """
    l1, offline = select_l1(events, sel), select_offline(events, sel)
    pairs = _pairs(l1, offline)
    dr2 = _dr2(pairs.l1, pairs.reco)
    kept = _assign(pairs, dr2, sel.match_dr2)
    turned = _at_station2(offline.source, offline.position[pairs.b], turn=True)
    fake = _assign(pairs, _dr2(pairs.l1, turned), sel.match_dr2)
    reco_barrel = np.abs(offline.source["etaSt2"][offline.position]) < BMTF_ETA
    matched = pairs.event[kept]
    counts = {
        "events": len(events),
        **l1.counts,
        **offline.counts,
        "offline_barrel": int(np.count_nonzero(reco_barrel)),
        "matched_pairs": int(kept.size),
        "events_matched": int(np.count_nonzero(np.diff(matched)) + (matched.size > 0)),
        "match_efficiency": int(np.count_nonzero(reco_barrel[pairs.b[kept]])),
        "fake_match_rate": int(fake.size),
    }
    event, out = _rows(l1, offline, pairs, kept, dr2, l1_only)
    out |= {name: ak.to_numpy(events[name])[event] for name in _EVENT_COLUMNS["scouting" if l1_only else "l1ntuple"]}
    out["entry"] = first_entry + event
    out["part"] = np.full(event.size, part)
    return {name: out[name].astype(dtype, copy=False) for name, dtype in columns(l1_only).items()}, counts


# ---------------------------------------------------------------------------------------------------------------
# scouting BX records as events

_NO_OFFLINE = {
    "pt": _F4, "eta": _F4, "phi": _F4, "mass": _F4, "charge": np.dtype("int32"), "etaSt2": _F4, "phiSt2": _F4,
    "isLooseMuon": np.dtype(bool), "isMediumMuon": np.dtype(bool), "isTightMuon": np.dtype(bool),
}  # fmt: skip
_SCOUTING_HW = ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "hwQual", "hwPtUnconstrained", "hwDXY")


def scouting_events(records: ak.Array) -> ak.Array:
    """Scouting BX records as skim events: ``run, orbit, bx``, ``L1Mu`` and an empty ``Muon`` collection.

    ``L1Mu`` has the L1Ntuple reader's fields: ``pt, eta, phi`` at the vertex (scouting-convention floats),
    ``etaSt2, phiSt2`` the muon-system coordinates, the hardware integers, and ``bx`` 0 (each BX record is its own
    event). So the selection and matching code is the same for every input format.
    """
    mu = records["muons"]
    l1 = {
        "pt": mu["pt"], "eta": mu["etaAtVtx"], "phi": mu["phiAtVtx"], "mass": ak.zeros_like(mu["pt"]),
        "charge": mu["charge"], "etaSt2": mu["eta"], "phiSt2": mu["phi"],
        **{name: mu[name] for name in _SCOUTING_HW},
        "tfMuonIndex": mu["tfMuonIndex"], "bx": ak.zeros_like(mu["hwPt"]),
    }  # fmt: skip
    empty = ak.zip({name: np.zeros(0, dtype) for name, dtype in _NO_OFFLINE.items()}, with_name=l1ntuple.CANDIDATE)
    fields = {name: records[name] for name in ("run", "orbit", "bx")}
    fields["L1Mu"] = ak.zip(l1, with_name=l1ntuple.CANDIDATE)
    fields["Muon"] = ak.unflatten(empty, np.zeros(len(records), np.int64))
    return ak.zip(fields, depth_limit=1, behavior=candidate.behavior)


# ---------------------------------------------------------------------------------------------------------------
# cutflow

CUTFLOW = (  # (step, denominator): the fraction column is count / count[denominator]
    ("events", None),
    ("l1_all", None),
    ("l1_bx", "l1_all"),
    ("l1_barrel", "l1_bx"),
    ("l1_quality", "l1_barrel"),
    ("l1_pt", "l1_quality"),
    ("offline_all", None),
    ("offline_st2_valid", "offline_all"),
    ("offline_id", "offline_st2_valid"),
    ("offline_pt", "offline_id"),
    ("offline_barrel", "offline_pt"),
    ("matched_pairs", "l1_pt"),
    ("events_matched", "events"),
    ("match_efficiency", "offline_barrel"),
    ("fake_match_rate", "matched_pairs"),
)
_OFFLINE_STEPS = ("offline_all", "offline_st2_valid", "offline_id", "offline_pt", "offline_barrel")
_MATCH_STEPS = ("matched_pairs", "events_matched", "match_efficiency", "fake_match_rate")


def _descriptions(sel: Selection, l1_only: bool) -> dict[str, str]:
    lo, hi = sel.tf_muon_index
    out = {
        "events": "BX records read (scouting: each BX is an event)" if l1_only else "events read",
        "l1_all": "L1 muons",
        "l1_bx": f"L1 muons in BX {sel.bx}" + (" (scouting: every muon is in its own BX)" if l1_only else ""),
        "l1_barrel": f"... from the BMTF (tfMuonIndex {lo}-{hi})",
        "l1_quality": f"... with hwQual >= {sel.min_quality}",
        "l1_pt": f"... with {sel.l1_pt[0]} < pT < {sel.l1_pt[1]} GeV (the selected L1 muons)",
        "offline_all": "offline muons",
        "offline_st2_valid": "... with valid station-2 coordinates (etaSt2/phiSt2 != -9999)",
        "offline_id": f"... passing the {sel.offline_id} ID" if sel.offline_id != "none" else "... (no ID required)",
        "offline_pt": f"... with pT >= {sel.offline_min_pt} GeV (the selected offline muons)",
        "offline_barrel": f"selected offline muons in the BMTF acceptance |etaSt2| < {BMTF_ETA}",
        "matched_pairs": f"one-to-one matched pairs with dR2 < {sel.match_dr2} at station 2 (fraction: of selected L1)",
        "events_matched": "events with at least one matched pair",
        "match_efficiency": f"matched offline muons with |etaSt2| < {BMTF_ETA} (fraction: the match efficiency)",
        "fake_match_rate": "pairs matched with the offline phiSt2 turned by pi (fraction: the fake-match rate)",
    }
    if l1_only:
        out |= dict.fromkeys(_OFFLINE_STEPS + _MATCH_STEPS, SCOUTING_NOTE)
    return out


def _with_fractions(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill ``fraction`` = count / count[denominator]; empty where there is no denominator or it is 0."""
    count = dict(zip(frame["step"], frame["count"], strict=True))
    denominators = [count[d] if isinstance(d, str) else 0 for d in frame["denominator"]]
    fraction = [c / d if d else np.nan for c, d in zip(frame["count"], denominators, strict=True)]
    return frame.assign(fraction=fraction)


def cutflow_frame(counts: Mapping[str, int], descriptions: Mapping[str, str]) -> pd.DataFrame:
    """The cutflow table: ``step, count, denominator, fraction, description``, rows in :data:`CUTFLOW` order."""
    frame = pd.DataFrame(
        {
            "step": [step for step, _ in CUTFLOW],
            "count": np.array([counts[step] for step, _ in CUTFLOW], np.int64),
            "denominator": [den for _, den in CUTFLOW],
            "fraction": np.nan,
            "description": [descriptions[step] for step, _ in CUTFLOW],
        }
    )
    return _with_fractions(frame)


def read_cutflow(path: str | os.PathLike) -> pd.DataFrame:
    """Read a cutflow CSV written by :func:`skim_file` or :func:`merge`."""
    dtypes = {"step": str, "count": np.int64, "denominator": str, "fraction": np.float64, "description": str}
    return pd.read_csv(path, dtype=dtypes)


def sum_cutflows(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Add up the counts of cutflows with the same steps and recompute the fractions from the sums."""
    steps = list(frames[0]["step"])
    for frame in frames[1:]:
        if list(frame["step"]) != steps:
            raise ValueError(f"cutflows have different steps: {steps} vs {list(frame['step'])}")
    total = frames[0].copy()
    total["count"] = np.sum([frame["count"].to_numpy() for frame in frames], axis=0)
    return _with_fractions(total)


# ---------------------------------------------------------------------------------------------------------------
# files


def check_format(path: str | os.PathLike, fmt: str) -> None:
    """Fail early, naming the file, when it is missing or is not a ``fmt`` file."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown input format {fmt!r}; allowed: {', '.join(FORMATS)}")
    try:
        detected = detect_format(path)
    except FormatError as err:
        raise FormatError(path, f"is not a {fmt} file: neither a ROOT file nor a scouting raw stream") from err
    if detected != fmt:
        raise FormatError(path, f"is a {detected} file, but the format {fmt!r} was expected")


def _event_chunks(
    path: str | os.PathLike, fmt: str, step_size: int, chunk_bytes: int, l1_tree: str | None
) -> Iterator[ak.Array]:
    if fmt == "l1ntuple":
        yield from l1ntuple.iterate(path, step_size=step_size, l1_tree=l1_tree or l1ntuple.TREES["l1"])
    else:
        for records in scouting.iterate(path, fmt, chunk_bytes):
            yield scouting_events(records)


def skim_file(
    path: str | os.PathLike,
    fmt: str,
    selection: Selection | Mapping[str, Any] | None,
    out_parquet: str | os.PathLike,
    out_cutflow: str | os.PathLike,
    *,
    step_size: int = DEFAULT_STEP_SIZE,
    chunk_bytes: int = scouting.DEFAULT_CHUNK_BYTES,
    l1_tree: str | None = None,
    part: int = 0,
) -> pd.DataFrame:
    """Skim one input file chunk by chunk into ``out_parquet`` (:func:`columns`) and ``out_cutflow``; return the latter.

    L1Ntuples give one row per matched pair; scouting files (no offline muons) one row per selected L1 muon. Both
    outputs appear only if the whole file was read (written through :func:`atomic_path`); a missing file or one
    of another format is an error naming it. ``l1_tree`` picks the L1Ntuple's L1 tree (default: unpacked).
    """
    sel = selection if isinstance(selection, Selection) else Selection.from_config(selection)
    if not 0 <= part <= np.iinfo(_U2).max:
        raise ValueError(f"part must be a file index in 0..{np.iinfo(_U2).max}, got {part}")
    check_format(path, fmt)
    l1_only = fmt != "l1ntuple"
    provenance = {"l1refit.format": fmt, "l1refit.selection": json.dumps(dataclasses.asdict(sel))}
    totals = dict.fromkeys((step for step, _ in CUTFLOW), 0)
    start = time.perf_counter()
    with atomic_path(out_parquet) as tmp_parquet, atomic_path(out_cutflow) as tmp_cutflow:
        with pq.ParquetWriter(tmp_parquet, schema(l1_only, provenance), **PARQUET) as writer:
            for k, events in enumerate(_event_chunks(path, fmt, step_size, chunk_bytes, l1_tree)):
                table, counts = skim_chunk(events, sel, l1_only=l1_only, part=part, first_entry=totals["events"])
                for step, n in counts.items():
                    totals[step] += n
                rows = len(table["hwPt"])
                if rows:
                    writer.write_table(pa.table(table, schema=writer.schema))
                print(
                    f"{path}: chunk {k}: {counts['events']} events, {counts['l1_all']} L1 muons, {rows} rows; "
                    f"total {totals['events']} events in {time.perf_counter() - start:.1f} s",
                    flush=True,
                )
        cutflow = cutflow_frame(totals, _descriptions(sel, l1_only))
        cutflow.to_csv(tmp_cutflow, index=False)
    return cutflow


def merge(
    parts: Sequence[str | os.PathLike],
    out_parquet: str | os.PathLike,
    cutflows: Sequence[str | os.PathLike],
    out_cutflow: str | os.PathLike,
) -> pd.DataFrame:
    """Concatenate per-file skims row group by row group (never a whole file in memory) and sum their cutflows.

    The parts must have the same columns, input format and selection (kept in the Parquet metadata).
    """
    if not parts or len(parts) != len(cutflows):
        raise ValueError(f"need one cutflow per part and at least one part, got {len(parts)} and {len(cutflows)}")
    first = pq.read_schema(parts[0])
    with atomic_path(out_parquet) as tmp_parquet, atomic_path(out_cutflow) as tmp_cutflow:
        with pq.ParquetWriter(tmp_parquet, first, **PARQUET) as writer:
            for part in parts:
                with contextlib.closing(pq.ParquetFile(part)) as file:
                    if not file.schema_arrow.equals(first, check_metadata=True):
                        raise FormatError(part, f"its columns or its selection differ from those of {parts[0]}")
                    for group in range(file.num_row_groups):
                        writer.write_table(file.read_row_group(group))
        cutflow = sum_cutflows([read_cutflow(path) for path in cutflows])
        cutflow.to_csv(tmp_cutflow, index=False)
    return cutflow
