"""The skim table of one chunk of events: its columns and dtypes, and the processor that selects, matches and counts.

Every input format goes through the same code: scouting BX records become events with an ``L1Mu`` collection and
an empty ``Muon`` collection (:func:`scouting_events`). L1Ntuples give one row per matched pair; scouting files,
which have no offline muons, give the selected L1 muons (the table the exported model is applied to).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import awkward as ak
import numpy as np
import pyarrow as pa
from coffea.nanoevents.methods import candidate

from l1refit.formats import l1ntuple
from l1refit.skim import neighbours
from l1refit.skim.matching import Matched, match_selected
from l1refit.skim.selection import BMTF_ETA, NO_TF_INDEX, Selected, Selection, select_l1, select_offline

_U1, _U2, _U4, _U8 = (np.dtype(t) for t in ("uint8", "uint16", "uint32", "uint64"))
_I1, _I2, _F4 = np.dtype("int8"), np.dtype("int16"), np.dtype("float32")
MAX_PART = np.iinfo(_U2).max  # the largest input-file index the ``part`` column holds

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
    out = _muon_columns(l1_only)
    if not l1_only:
        out |= {name: dtype for name, (_, dtype) in _RECO_COLUMNS.items()} | {"reco_index": _U1, "dr2": _F4}
    return out


def _muon_columns(l1_only: bool) -> dict[str, np.dtype]:
    """What every table of selected L1 muons starts with: the event, ``part`` (and ``entry``), the L1 values."""
    event = _EVENT_COLUMNS["scouting" if l1_only else "l1ntuple"]
    out = {**event, "part": _U2} | ({} if l1_only else {"entry": _U4})
    return out | {name: dtype for name, (_, dtype) in _L1_COLUMNS.items()} | {"l1_index": _U1}


def candidate_columns(l1_only: bool = False) -> dict[str, np.dtype]:
    """The candidate table's columns: every selected L1 muon (matched or not) with its neighbour features
    (:mod:`l1refit.skim.neighbours`) and, where the input has offline muons, ``is_fake``: no offline muon matched
    it (the label of fake identification; an L1 muon whose offline muon fails the offline selection counts as fake).
    """
    out = _muon_columns(l1_only) | neighbours.COLUMNS
    return out if l1_only else out | {"is_fake": np.dtype(bool)}


def _arrow_schema(cols: Mapping[str, np.dtype], metadata: Mapping[str, str] | None) -> pa.Schema:
    return pa.schema([(name, pa.from_numpy_dtype(dtype)) for name, dtype in cols.items()], metadata)


def schema(l1_only: bool = False, metadata: Mapping[str, str] | None = None) -> pa.Schema:
    """The Parquet schema of :func:`columns`, with optional key-value metadata (provenance)."""
    return _arrow_schema(columns(l1_only), metadata)


def candidate_schema(l1_only: bool = False, metadata: Mapping[str, str] | None = None) -> pa.Schema:
    """The Parquet schema of :func:`candidate_columns`."""
    return _arrow_schema(candidate_columns(l1_only), metadata)


def _field(source, field: str) -> np.ndarray:
    """A flat L1 field; ``tfMuonIndex`` reads as :data:`NO_TF_INDEX` where the file has none (central NanoAOD)."""
    if field == "tfMuonIndex" and field not in source.flat.fields:
        return np.full(len(source.flat), NO_TF_INDEX, _U1)
    return source[field]


def _rows(
    l1: Selected, offline: Selected | None, matched: Matched, l1_only: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(chunk event of each row, per-muon skim columns): matched pairs, or every selected L1 muon (``l1_only``)."""
    pairs, kept = matched.pairs, matched.kept
    if l1_only:
        event = np.repeat(np.arange(l1.num.size), l1.num)
        l1_row = np.arange(l1.position.size)
    else:
        event, l1_row = pairs.event[kept], pairs.a[kept]
    l1_at = l1.position[l1_row]
    out = {name: _field(l1.source, field)[l1_at] for name, (field, _) in _L1_COLUMNS.items()}
    out["l1_index"] = l1_at - l1.source.starts[event]
    if not l1_only:
        reco_at = offline.position[pairs.b[kept]]
        out |= {name: offline.source[field][reco_at] for name, (field, _) in _RECO_COLUMNS.items()}
        out["reco_index"] = reco_at - offline.source.starts[event]
        out["dr2"] = matched.dr2[kept]
    return event, out


def _candidate_rows(l1: Selected, matched: Matched, l1_only: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(chunk event of each row, per-muon candidate columns): every selected L1 muon, its neighbours, its label
    (``matched``: the one-to-one matching to the offline muons of ``selection.fake_offline_id``)."""
    event, out = _rows(l1, None, matched, l1_only=True)
    at = l1.position
    out |= neighbours.neighbour_features(
        l1.num, *(_field(l1.source, name)[at] for name in ("hwPhi", "hwEta", "hwQual", "hwPt"))
    )
    if not l1_only:
        is_fake = np.ones(at.size, bool)
        is_fake[matched.pairs.a[matched.kept]] = False
        out["is_fake"] = is_fake
    return event, out


def _table(events: ak.Array, event: np.ndarray, out: dict, cols: Mapping[str, np.dtype], l1_only: bool, part: int,
           first_entry: int) -> dict[str, np.ndarray]:  # fmt: skip
    """The rows' event columns added to their muon columns, cast to ``cols``."""
    out |= {name: ak.to_numpy(events[name])[event] for name in _EVENT_COLUMNS["scouting" if l1_only else "l1ntuple"]}
    out["entry"] = first_entry + event
    out["part"] = np.full(event.size, part)
    return {name: out[name].astype(dtype, copy=False) for name, dtype in cols.items()}


def skim_chunk(
    events: ak.Array,
    sel: Selection,
    *,
    l1_only: bool = False,
    part: int = 0,
    first_entry: int = 0,
    candidates: bool = False,
):
    """One chunk of events -> (the skim columns of :func:`columns`, its cutflow counts).

    Rows are matched pairs, or with ``l1_only`` every selected L1 muon. The matching runs in both cases (same
    code path); ``first_entry`` is the file entry of the chunk's first event. With ``candidates`` the result is
    (skim columns, candidate columns of :func:`candidate_columns`, counts).
    """
    l1, offline = select_l1(events, sel), select_offline(events, sel)
    matched = match_selected(l1, offline, sel.match_dr2_cut, sel.match_at)
    pairs, kept = matched.pairs, matched.kept
    reco_barrel = np.abs(offline.source["etaSt2"][offline.position]) < BMTF_ETA
    event_of_pair = pairs.event[kept]
    counts = {
        "events": len(events),
        **l1.counts,
        **offline.counts,
        "offline_barrel": int(np.count_nonzero(reco_barrel)),
        "matched_pairs": int(kept.size),
        "events_matched": int(np.count_nonzero(np.diff(event_of_pair)) + (event_of_pair.size > 0)),
        "match_efficiency": int(np.count_nonzero(reco_barrel[pairs.b[kept]])),
        "fake_match_rate": matched.n_fake,
    }
    event, out = _rows(l1, offline, matched, l1_only)
    table = _table(events, event, out, columns(l1_only), l1_only, part, first_entry)
    if not candidates:
        return table, counts
    if sel.fake_offline_id != sel.offline_id:
        labelling = dataclasses.replace(sel, offline_id=sel.fake_offline_id)
        matched = match_selected(l1, select_offline(events, labelling), sel.match_dr2_cut, sel.match_at)
    event, out = _candidate_rows(l1, matched, l1_only)
    return table, _table(events, event, out, candidate_columns(l1_only), l1_only, part, first_entry), counts


_NO_OFFLINE = {
    "pt": _F4, "eta": _F4, "phi": _F4, "mass": _F4, "charge": np.dtype("int32"), "etaSt2": _F4, "phiSt2": _F4,
    "isLooseMuon": np.dtype(bool), "isMediumMuon": np.dtype(bool), "isTightMuon": np.dtype(bool),
}  # fmt: skip
_SCOUTING_HW = ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "hwQual", "hwPtUnconstrained", "hwDXY")


def l1scouting_events(rows: Mapping[str, np.ndarray]) -> ak.Array:
    """Per-muon rows of a CMSSW L1 scouting file (:func:`l1refit.formats.l1scouting.iterate`, sorted by orbit and
    BX) as the BX records :func:`scouting_events` takes: one record per (orbit, BX) with its muons."""
    key = rows["orbit"].astype(np.int64) * 4096 + rows["bx"].astype(np.int64)
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, np.int64)
    counts = np.diff(np.r_[first, key.size])
    muons = {name: rows[name] for name in ("pt", "eta", "phi", "etaAtVtx", "phiAtVtx", "charge", "tfMuonIndex",
                                            *_SCOUTING_HW)}  # fmt: skip
    records = {name: rows[name][first] for name in ("run", "orbit", "bx")}
    records["muons"] = ak.unflatten(ak.zip(muons), counts)
    return scouting_events(ak.zip(records, depth_limit=1))


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
