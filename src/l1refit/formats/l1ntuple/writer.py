"""Writing L1Ntuple-layout ROOT files with uproot, chunk by chunk, atomically (see :class:`Writer`).

Same tree paths and leaf names as CMSSW (docs/formats.md §4), flat branches; floats missing from the input are
computed from the hardware integers in the cmssw convention of :mod:`l1refit.scales`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from l1refit import scales
from l1refit.formats.l1ntuple.layout import (
    COUNTER,
    EVENT,
    L1,
    MUON_MASS,
    OFFLINE,
    OFFLINE_ENERGY,
    OPTIONAL,
    REQUIRED,
    STATION_INVALID,
    TREES,
)
from l1refit.formats.output import atomic_path

COMPRESSION = {"lz4": uproot.LZ4(1), "zlib": uproot.ZLIB(1)}

_L1_WRITE_REQUIRED = ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual", "tfMuonIndex")
_L1_WRITE_ZERO = ("hwIso", "hwDXY", "hwPtUnconstrained", "bx")


def _hw_dphi(hw_phi_at_vtx: np.ndarray, hw_phi: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """hwDPhiExtra as CMSSW defines it (docs/formats.md §1): the difference wrapped by 576 the way the charge bends.

    Negative muons get dφ ≤ 0, positive ones (and charge 0, whose sign bit reads as 0) dφ ≥ 0.
    """
    dphi = hw_phi_at_vtx.astype(np.int64) - hw_phi
    negative = charge < 0
    dphi = np.where(negative & (dphi > 0), dphi - scales.N_PHI, dphi)
    return np.where(~negative & (dphi < 0), dphi + scales.N_PHI, dphi)


# what a caller may leave out: computed from the hardware integers (cmssw convention)
_L1_FROM_HW = {
    "pt": lambda c: scales.hw_to_pt(c["hwPt"], convention="cmssw"),
    "eta": lambda c: scales.hw_to_eta(c["hwEtaAtVtx"], convention="cmssw"),
    "phi": lambda c: scales.hw_to_phi(c["hwPhiAtVtx"], convention="cmssw"),
    "etaSt2": lambda c: scales.hw_to_eta(c["hwEta"], convention="cmssw"),
    "phiSt2": lambda c: scales.hw_to_phi(c["hwPhi"], convention="cmssw"),
    "ptUnconstrained": lambda c: scales.hw_to_pt_unconstrained(c["hwPtUnconstrained"], convention="cmssw"),
    "hwDEta": lambda c: c["hwEtaAtVtx"].astype(np.int64) - c["hwEta"],
    "hwDPhi": lambda c: _hw_dphi(c["hwPhiAtVtx"], c["hwPhi"], c["charge"]),
}
_OFFLINE_WRITE_DEFAULT = {"etaSt1": STATION_INVALID, "phiSt1": STATION_INVALID}


@dataclass(frozen=True)
class _Schema:
    """Which optional content a file gets; fixed by the first chunk, every later chunk must agree."""

    event: tuple[str, ...]
    offline: tuple[str, ...] | None  # None: no offline tree (the events have no Muon collection)


_DEFAULT_SCHEMA = _Schema(
    event=tuple(f for f, s in EVENT.items() if s.presence == REQUIRED),
    offline=tuple(f for f, s in OFFLINE.items() if s.presence != OPTIONAL),
)


def _as_events(events: ak.Array | Mapping[str, Any]) -> ak.Array:
    events = ak.Array(dict(events)) if isinstance(events, Mapping) else events
    missing = [f for f in (*_DEFAULT_SCHEMA.event, "L1Mu") if f not in events.fields]
    if missing:
        raise ValueError(f"events lack {missing}; they need run, lumi, event and L1Mu (Muon is optional)")
    return events


def _schema_of(events: ak.Array) -> _Schema:
    event = tuple(f for f, s in EVENT.items() if s.presence == REQUIRED or f in events.fields)
    if "Muon" not in events.fields:
        return _Schema(event, None)
    present = set(ak.fields(events["Muon"]))
    offline = tuple(f for f, s in OFFLINE.items() if s.presence != OPTIONAL or f in present)
    return _Schema(event, offline)


def _cast(values: np.ndarray, dtype: np.dtype, field: str) -> np.ndarray:
    """Cast to the CMSSW leaf type, refusing integers that would wrap around."""
    values = np.asarray(values)
    if dtype.kind in "iu" and values.size:
        info = np.iinfo(dtype)
        low, high = values.min(), values.max()
        if low < info.min or high > info.max:
            raise ValueError(f"{field}: values {low}..{high} do not fit the leaf type {dtype}")
    return values.astype(dtype, copy=False)


def _flatten(collection: ak.Array, wanted: Collection[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-event counts and the wanted fields as flat NumPy columns."""
    counts = ak.to_numpy(ak.num(collection, axis=1))
    flat = ak.flatten(collection, axis=1)
    return counts, {f: ak.to_numpy(flat[f]) for f in flat.fields if f in wanted}


def _jagged(leaves: dict[str, np.ndarray], counts: np.ndarray) -> ak.Array:
    return ak.unflatten(ak.zip(leaves), counts)


def _l1_leaves(l1: ak.Array) -> ak.Array:
    """L1Mu records -> the muon* leaves; missing floats come from the hardware integers (cmssw convention)."""
    counts, columns = _flatten(l1, L1)
    missing = [f for f in _L1_WRITE_REQUIRED if f not in columns]
    if missing:
        raise ValueError(f"L1Mu lacks the hardware fields {missing}")
    n = len(columns["hwPt"])
    for field in _L1_WRITE_ZERO:
        columns.setdefault(field, np.zeros(n, np.int64))
    for field, derive in _L1_FROM_HW.items():
        if field not in columns:
            columns[field] = derive(columns)
    return _jagged({s.leaf: _cast(columns[f], s.dtype, f) for f, s in L1.items()}, counts)


def _offline_leaves(muon: ak.Array, fields: tuple[str, ...]) -> ak.Array:
    """Muon records -> the Muon2RecoTree leaves, with e and et from pt, eta and the muon mass."""
    counts, columns = _flatten(muon, fields)
    missing = [f for f in fields if f not in columns and f not in _OFFLINE_WRITE_DEFAULT]
    if missing:
        raise ValueError(f"Muon lacks the fields {missing}")
    n = len(columns["pt"])
    for field, value in _OFFLINE_WRITE_DEFAULT.items():
        columns.setdefault(field, np.full(n, value, dtype=np.float32))
    leaves = {OFFLINE[f].leaf: _cast(columns[f], OFFLINE[f].dtype, f) for f in fields}
    cosh_eta = np.cosh(leaves["eta"].astype(np.float64))
    energy = np.hypot(leaves["pt"] * cosh_eta, MUON_MASS)
    leaves["e"] = energy.astype(np.float32)
    leaves["et"] = (energy / cosh_eta).astype(np.float32)  # E sin(theta), as ROOT's Et()
    return _jagged(leaves, counts)


def _record_type(leaves: dict[str, np.dtype]) -> str:
    """An awkward datashape for a jagged record; mktree turns its fields into branches sharing one counter."""
    inner = ", ".join(f"{leaf}: {np.dtype(dtype).name}" for leaf, dtype in leaves.items())
    return f"var * {{{inner}}}"


class Writer:
    """Write events chunk by chunk into a flat L1Ntuple-layout file (same tree paths and leaf names as CMSSW).

    Use as a context manager; the file appears under ``path`` only when the block ends without an exception
    (it is written through :func:`l1refit.formats.output.atomic_path`). Each tree's jagged leaves share one counter
    branch ``nMuons``. ``events`` passed to :meth:`extend` have :func:`.reader.read`'s layout; ``L1Mu`` may hold only
    the hardware integers (``hwPt, hwEta, hwPhi, hwEtaAtVtx, hwPhiAtVtx, charge, hwQual, tfMuonIndex``; ``hwIso,
    hwDXY, hwPtUnconstrained, bx`` default to 0) and then gets the floats from :mod:`l1refit.scales` (cmssw
    convention, stored as float32). Events without a ``Muon`` field give an L1-only file (no offline tree).
    """

    def __init__(self, path: str | os.PathLike, *, l1_tree: str = TREES["l1"], compression: str = "lz4"):
        if compression not in COMPRESSION:
            raise ValueError(f"compression must be one of {sorted(COMPRESSION)}, got {compression!r}")
        self.path = Path(path)
        self.l1_tree = l1_tree
        self.compression = compression
        self._stack: contextlib.ExitStack | None = None
        self._file: Any = None
        self._trees: dict[str, Any] = {}
        self._schema: _Schema | None = None

    def __enter__(self) -> Writer:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._file = stack.enter_context(uproot.recreate(tmp, compression=COMPRESSION[self.compression]))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        stack, self._stack = self._stack, None
        try:
            if exc_type is None and self._schema is None:
                try:
                    self._create_trees(_DEFAULT_SCHEMA)  # a file without events still has its trees
                except BaseException as err:
                    stack.__exit__(type(err), err, err.__traceback__)
                    raise
            stack.__exit__(exc_type, exc, tb)
        finally:
            self._file = None

    def extend(self, events: ak.Array | Mapping[str, Any]) -> None:
        """Append a chunk of events; its optional content (bx, orbit, Muon, hlt flags) must be the first's."""
        if self._file is None:
            raise RuntimeError("Writer is not open: use it as `with Writer(path) as writer:`")
        events = _as_events(events)
        schema = _schema_of(events)
        if self._schema is None:
            self._create_trees(schema)
        elif schema != self._schema:
            raise ValueError(f"chunk's optional fields differ from the first chunk's: {schema} vs {self._schema}")
        if len(events) == 0:
            return
        self._trees["event"].extend(
            {EVENT[f].leaf: _cast(ak.to_numpy(events[f]), EVENT[f].dtype, f) for f in schema.event}
        )
        self._trees["l1"].extend({"muon": _l1_leaves(events["L1Mu"])})
        if schema.offline is not None:
            self._trees["offline"].extend({"muon": _offline_leaves(events["Muon"], schema.offline)})

    def _create_trees(self, schema: _Schema) -> None:
        self._schema = schema
        shared = {"counter_name": lambda counted: COUNTER, "field_name": lambda outer, inner: inner}
        event_leaves = {EVENT[f].leaf: EVENT[f].dtype for f in schema.event}
        self._trees["event"] = self._file.mktree(TREES["event"], event_leaves)
        l1_type = _record_type({s.leaf: s.dtype for s in L1.values()})
        self._trees["l1"] = self._file.mktree(self.l1_tree, {"muon": l1_type}, **shared)
        if schema.offline is not None:
            leaves = {OFFLINE[f].leaf: OFFLINE[f].dtype for f in schema.offline} | OFFLINE_ENERGY
            offline_type = {"muon": _record_type(leaves)}
            self._trees["offline"] = self._file.mktree(TREES["offline"], offline_type, **shared)


def write(
    path: str | os.PathLike,
    events: ak.Array | Mapping[str, Any],
    *,
    l1_tree: str = TREES["l1"],
    compression: str = "lz4",
) -> None:
    """Write ``events`` (:func:`.reader.read`'s layout, see :class:`Writer`) to ``path`` in one go, atomically."""
    with Writer(path, l1_tree=l1_tree, compression=compression) as writer:
        writer.extend(events)
