"""L1Ntuple ROOT files (FORMATS.md §4): read them into coffea candidates, write them with uproot.

Two spellings of the same trees are read:

``cmssw-split``
    What ``L1Trigger/L1TNtuples`` writes: one split class branch per tree (``L1Upgrade``, ``Muon``,
    ``Event``) whose leaves uproot names ``L1Upgrade/muonEt`` and so on.
``flat``
    What :class:`Writer` writes: the same tree paths and leaf names as plain top-level branches
    (``muonEt``), the jagged ones of a tree sharing one counter branch ``nMuons``.

The trees line up by entry index only, so they are always read over the same entry range.

Event layout of :func:`read` / :func:`iterate`, one record per event, carrying coffea's candidate behaviour
so that ``delta_r`` and ``(a + b).mass`` come from the library:

* ``run, lumi, event`` and, when the file has them, ``bx, orbit``;
* ``L1Mu``: ``PtEtaPhiMCandidate`` records. ``pt, eta, phi`` are the stored floats **at the vertex**
  (``muonEt, muonEtaAtVtx, muonPhiAtVtx``), so an L1 dimuon mass is ``(mu1 + mu2).mass``. ``mass`` is 0:
  the uGMT treats muons as massless (``l1t::Muon`` is built with m = 0). ``etaSt2, phiSt2`` are the
  muon-system coordinates ``muonEta, muonPhi`` (in practice station 2, where the offline side is
  propagated to). Then the hardware integers ``hwPt, hwEta, hwPhi, hwEtaAtVtx, hwPhiAtVtx, hwDEta, hwDPhi,
  hwQual, hwIso, hwDXY, hwPtUnconstrained``, the float ``ptUnconstrained`` and ``tfMuonIndex, bx``. The
  Run-3 leaves (``muonDxy, muonIEtUnconstrained, muonEtUnconstrained``) read as 0 where a file lacks them.
* ``Muon``: offline ``PtEtaPhiMCandidate`` records with the PDG muon mass (from ``particle``): ``pt, eta,
  phi, mass, charge, etaSt1, phiSt1, etaSt2, phiSt2`` (−9999 kept as stored where the propagation failed),
  ``isLooseMuon, isMediumMuon, isTightMuon, iso`` and, when the file has them, ``hlt_isomu, hlt_mu,
  passesSingleMuon``. ``e`` and ``et`` are left out: the candidate takes its energy from pt, eta, mass.

Every value is the one stored in the file, dtype included; nothing is recomputed on reading.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import particle
import uproot
from coffea.nanoevents.methods import candidate

from l1refit import scales
from l1refit.errors import FormatError
from l1refit.io import atomic_path

TREES = {
    "event": "l1EventTree/L1EventTree",
    "l1": "l1UpgradeTree/L1UpgradeTree",
    "offline": "l1MuonRecoTree/Muon2RecoTree",
}
EMU_L1_TREE = "l1UpgradeEmuTree/L1UpgradeTree"  # the emulated uGMT muons, same class as TREES["l1"]
_SPLIT_BRANCH = {"event": "Event", "l1": "L1Upgrade", "offline": "Muon"}

MUON_MASS = particle.Particle.from_pdgid(13).mass / 1000.0  # GeV
STATION_INVALID = -9999.0  # what CMSSW stores in etaSt1/phiSt1/etaSt2/phiSt2 when the propagation fails
CANDIDATE = "PtEtaPhiMCandidate"
COUNTER = "nMuons"  # the counter branch shared by every jagged branch of a tree that Writer writes
COMPRESSION = {"lz4": uproot.LZ4(1), "zlib": uproot.ZLIB(1)}

_REQUIRED, _ZERO, _OPTIONAL = "required", "zero", "optional"  # absent leaf: error / read as 0 / field omitted


@dataclass(frozen=True)
class _Leaf:
    leaf: str
    dtype: np.dtype
    presence: str = _REQUIRED


_F4, _I2, _U2, _I4 = np.dtype("float32"), np.dtype("int16"), np.dtype("uint16"), np.dtype("int32")
_U4, _U8 = np.dtype("uint32"), np.dtype("uint64")
_BOOL = np.dtype(bool)

# field -> leaf; order is the output field order. Types are the CMSSW ones (FORMATS §4.1–4.3).
_EVENT = {
    "run": _Leaf("run", _U4),
    "lumi": _Leaf("lumi", _U4),
    "event": _Leaf("event", _U8),
    "bx": _Leaf("bx", _U4, _OPTIONAL),
    "orbit": _Leaf("orbit", _U8, _OPTIONAL),
}
_L1 = {
    "pt": _Leaf("muonEt", _F4),
    "eta": _Leaf("muonEtaAtVtx", _F4),
    "phi": _Leaf("muonPhiAtVtx", _F4),
    "charge": _Leaf("muonChg", _I2),
    "etaSt2": _Leaf("muonEta", _F4),
    "phiSt2": _Leaf("muonPhi", _F4),
    "hwPt": _Leaf("muonIEt", _I2),
    "hwEta": _Leaf("muonIEta", _I2),
    "hwPhi": _Leaf("muonIPhi", _I2),
    "hwEtaAtVtx": _Leaf("muonIEtaAtVtx", _I2),
    "hwPhiAtVtx": _Leaf("muonIPhiAtVtx", _I2),
    "hwDEta": _Leaf("muonIDEta", _I2),
    "hwDPhi": _Leaf("muonIDPhi", _I2),
    "hwQual": _Leaf("muonQual", _U2),
    "hwIso": _Leaf("muonIso", _U2),
    "hwDXY": _Leaf("muonDxy", _U2, _ZERO),
    "hwPtUnconstrained": _Leaf("muonIEtUnconstrained", _I2, _ZERO),
    "ptUnconstrained": _Leaf("muonEtUnconstrained", _F4, _ZERO),
    "tfMuonIndex": _Leaf("muonTfMuonIdx", _U2),
    "bx": _Leaf("muonBx", _I2),
}
_OFFLINE = {
    "pt": _Leaf("pt", _F4),
    "eta": _Leaf("eta", _F4),
    "phi": _Leaf("phi", _F4),
    "charge": _Leaf("charge", _I4),
    "etaSt1": _Leaf("etaSt1", _F4),
    "phiSt1": _Leaf("phiSt1", _F4),
    "etaSt2": _Leaf("etaSt2", _F4),
    "phiSt2": _Leaf("phiSt2", _F4),
    "isLooseMuon": _Leaf("isLooseMuon", _BOOL),
    "isMediumMuon": _Leaf("isMediumMuon", _BOOL),
    "isTightMuon": _Leaf("isTightMuon", _BOOL),
    "iso": _Leaf("iso", _F4),
    "hlt_isomu": _Leaf("hlt_isomu", _I2, _OPTIONAL),
    "hlt_mu": _Leaf("hlt_mu", _I2, _OPTIONAL),
    "passesSingleMuon": _Leaf("passesSingleMuon", _I4, _OPTIONAL),
}
_OFFLINE_ENERGY = {"e": _F4, "et": _F4}  # written (the CMSSW tree has them), never read back
_TABLES = {"event": _EVENT, "l1": _L1, "offline": _OFFLINE}


# ---------------------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class _Tree:
    """One tree with its leaves resolved to the branch keys of this file."""

    kind: str  # "event", "l1" or "offline"
    name: str
    tree: Any
    keys: dict[str, str]  # field -> branch key in the file
    zero: tuple[str, ...]  # fields whose leaf is absent and that read as 0
    layout: str  # "cmssw-split" or "flat"


@dataclass(frozen=True)
class _Source:
    path: str
    num_entries: int
    event: _Tree
    l1: _Tree
    offline: _Tree | None  # None: no offline tree (allowed with require_offline=False)


@contextlib.contextmanager
def _open(path: str | os.PathLike) -> Iterator[Any]:
    """Open with uproot; anything that is not a readable ROOT file becomes a FormatError naming it."""
    try:
        if isinstance(path, str) and "://" in path:
            file = uproot.open(path)
        else:  # a Path is never split at ':'; memory-mapping is the fastest local source here
            file = uproot.open(Path(path), handler=uproot.source.file.MemmapSource)
    except FileNotFoundError:  # a missing file is not a format problem: keep the precise exception
        raise
    except (OSError, ValueError, uproot.deserialization.DeserializationError) as err:
        raise FormatError(path, f"not a readable ROOT file ({err})") from err
    with file:
        yield file


def _find_tree(file: Any, path: str, name: str) -> Any | None:
    if name not in file:
        return None
    obj = file[name]
    if not isinstance(obj, uproot.TTree):
        raise FormatError(path, f"{name!r} is a {type(obj).__name__}, not a TTree")
    return obj


def _resolve(file: Any, path: str, name: str, kind: str) -> _Tree | None:
    """Map each field to ``<class branch>/<leaf>`` (CMSSW split) or ``<leaf>`` (flat); None if no tree."""
    tree = _find_tree(file, path, name)
    if tree is None:
        return None
    available = set(tree.keys())
    keys, zero = {}, []
    for field, spec in _TABLES[kind].items():
        spellings = (f"{_SPLIT_BRANCH[kind]}/{spec.leaf}", spec.leaf)
        key = next((k for k in spellings if k in available), None)
        if key is not None:
            keys[field] = key
        elif spec.presence == _REQUIRED:
            raise FormatError(path, f"tree {name!r} has no branch {spec.leaf!r}", branch=spec.leaf)
        elif spec.presence == _ZERO:
            zero.append(field)
    layout = "cmssw-split" if any("/" in k for k in keys.values()) else "flat"
    return _Tree(kind, name, tree, keys, tuple(zero), layout)


def _require(tree: _Tree | None, path: str, name: str) -> _Tree:
    if tree is None:
        raise FormatError(path, f"tree {name!r} not found")
    return tree


def _source(file: Any, path: str, l1_tree: str, require_offline: bool) -> _Source:
    event = _require(_resolve(file, path, TREES["event"], "event"), path, TREES["event"])
    l1 = _require(_resolve(file, path, l1_tree, "l1"), path, l1_tree)
    offline = _resolve(file, path, TREES["offline"], "offline")
    if require_offline:
        _require(offline, path, TREES["offline"])
    entries = {t.name: t.tree.num_entries for t in (event, l1, offline) if t is not None}
    if len(set(entries.values())) != 1:
        raise FormatError(path, f"the trees do not line up; entries per tree: {entries}")
    return _Source(path, event.tree.num_entries, event, l1, offline)


def _read_tree(
    src: _Source, tree: _Tree, start: int, stop: int, fields: list[str] | None = None
) -> dict[str, ak.Array]:
    fields = list(tree.keys) if fields is None else fields
    keys = [tree.keys[f] for f in fields]
    try:
        arrays = tree.tree.arrays(keys, entry_start=start, entry_stop=stop, library="ak")
    except (OSError, ValueError, uproot.deserialization.DeserializationError) as err:
        raise FormatError(src.path, f"cannot read tree {tree.name!r} ({err})") from err
    return {field: arrays[key] for field, key in zip(fields, keys, strict=True)}


def _zip_candidates(flat: dict[str, np.ndarray], counts: np.ndarray, kind: str, mass: float) -> ak.Array:
    """Jagged candidate records in table order; absent Run-3 leaves as 0 and ``mass`` right after ``phi``."""
    n = int(counts.sum())
    fields = {}
    for field, spec in _TABLES[kind].items():
        if field in flat:
            fields[field] = flat[field]
        elif spec.presence == _ZERO:
            fields[field] = np.zeros(n, spec.dtype)
        if field == "phi":
            fields["mass"] = np.full(n, mass, dtype=np.float32)
    return ak.unflatten(ak.zip(fields, with_name=CANDIDATE), counts)


def _collection(src: _Source, tree: _Tree, start: int, stop: int, mass: float) -> ak.Array:
    """Read one tree's jagged leaves and zip them, checking that all leaves have the same multiplicities."""
    columns = _read_tree(src, tree, start, stop)
    counts = ak.to_numpy(ak.num(columns["pt"], axis=1))
    flat = {}
    for field, array in columns.items():
        if not np.array_equal(ak.to_numpy(ak.num(array, axis=1)), counts):
            leaf = _TABLES[tree.kind][field].leaf
            what = f"tree {tree.name!r}: multiplicities differ from the pt leaf's"
            raise FormatError(src.path, what, branch=leaf)
        flat[field] = ak.to_numpy(ak.flatten(array, axis=1))
    return _zip_candidates(flat, counts, tree.kind, mass)


def _empty_offline(n_events: int) -> ak.Array:
    flat = {f: np.zeros(0, s.dtype) for f, s in _OFFLINE.items() if s.presence != _OPTIONAL}
    return _zip_candidates(flat, np.zeros(n_events, np.int64), "offline", MUON_MASS)


def _read_range(src: _Source, start: int, stop: int) -> ak.Array:
    fields: dict[str, Any] = {f: ak.to_numpy(a) for f, a in _read_tree(src, src.event, start, stop).items()}
    fields["L1Mu"] = _collection(src, src.l1, start, stop, 0.0)
    if src.offline is None:
        fields["Muon"] = _empty_offline(stop - start)
    else:
        fields["Muon"] = _collection(src, src.offline, start, stop, MUON_MASS)
    return ak.zip(fields, depth_limit=1, behavior=candidate.behavior)


def _entry_range(num_entries: int, entry_start: int | None, entry_stop: int | None) -> tuple[int, int]:
    """Python slice semantics (None, negative indices, clipping), like uproot's entry_start/entry_stop."""
    start, stop, _ = slice(entry_start, entry_stop).indices(num_entries)
    return start, max(start, stop)


def read(
    path: str | os.PathLike,
    *,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    l1_tree: str = TREES["l1"],
    require_offline: bool = True,
) -> ak.Array:
    """Read an L1Ntuple (CMSSW split layout or this project's flat layout) into one record per event.

    ``l1_tree`` picks the unpacked (default) or the emulated (:data:`EMU_L1_TREE`) uGMT muons. With
    ``require_offline=False`` a file without the offline tree (L1-only ntuples) gives empty ``Muon`` lists.
    Raises :class:`FormatError` naming the file and the tree/branch for anything missing or unreadable.
    """
    with _open(path) as file:
        src = _source(file, str(path), l1_tree, require_offline)
        return _read_range(src, *_entry_range(src.num_entries, entry_start, entry_stop))


def iterate(
    path: str | os.PathLike,
    *,
    step_size: int = 100_000,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    l1_tree: str = TREES["l1"],
    require_offline: bool = True,
) -> Iterator[ak.Array]:
    """Yield :func:`read`'s records ``step_size`` events at a time, so that memory stays bounded.

    The three trees are read over the same entry range per chunk (they line up by entry index only). The
    file is opened at the first ``next()``, so errors surface there.
    """
    if step_size < 1:
        raise ValueError(f"step_size must be a positive number of events, got {step_size}")
    with _open(path) as file:
        src = _source(file, str(path), l1_tree, require_offline)
        start, stop = _entry_range(src.num_entries, entry_start, entry_stop)
        for low in range(start, stop, step_size):
            yield _read_range(src, low, min(low + step_size, stop))


def at_station2(collection: ak.Array) -> ak.Array:
    """The same candidates with ``eta, phi`` replaced by ``etaSt2, phiSt2``: ΔR at the second muon station.

    Works for ``L1Mu`` (muon-system coordinates) and ``Muon`` (propagated offline track); offline −9999 values
    stay as they are and give a huge ΔR, so they never match.
    """
    moved = ak.with_field(collection, collection["etaSt2"], "eta")
    return ak.with_field(moved, collection["phiSt2"], "phi")


def summarize(path: str | os.PathLike, *, l1_tree: str = TREES["l1"], n_first: int = 5) -> dict[str, Any]:
    """What ``l1refit inspect`` prints: layout, counts, trees and branches, the first few L1 muons."""
    with _open(path) as file:
        src = _source(file, str(path), l1_tree, require_offline=False)
        trees = {
            name: list(file[name].keys())
            for name, cls in file.classnames(cycle=False).items()
            if cls == "TTree"
        }
        n_l1 = _count_muons(src, src.l1)
        n_offline = None if src.offline is None else _count_muons(src, src.offline)
        head = _read_range(src, 0, min(src.num_entries, 1000))
    return {
        "path": str(path),
        "layout": src.l1.layout,
        "l1_tree": l1_tree,
        "n_events": src.num_entries,
        "n_l1_muons": n_l1,
        "n_offline_muons": n_offline,
        "zero_filled": list(src.l1.zero),
        "trees": trees,
        "first_l1_muons": ak.to_list(ak.flatten(head["L1Mu"], axis=1)[:n_first]),
    }


def _count_muons(src: _Source, tree: _Tree) -> int:
    pt = _read_tree(src, tree, 0, src.num_entries, fields=["pt"])["pt"]
    return int(ak.sum(ak.num(pt, axis=1)))


# ---------------------------------------------------------------------------------------------------------
# writing

_L1_WRITE_REQUIRED = ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual", "tfMuonIndex")
_L1_WRITE_ZERO = ("hwIso", "hwDXY", "hwPtUnconstrained", "bx")


def _hw_dphi(hw_phi_at_vtx: np.ndarray, hw_phi: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """hwDPhiExtra as CMSSW defines it (FORMATS §1): the difference wrapped by 576 the way the charge bends.

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
    event=tuple(f for f, s in _EVENT.items() if s.presence == _REQUIRED),
    offline=tuple(f for f, s in _OFFLINE.items() if s.presence != _OPTIONAL),
)


def _as_events(events: ak.Array | Mapping[str, Any]) -> ak.Array:
    events = ak.Array(dict(events)) if isinstance(events, Mapping) else events
    missing = [f for f in (*_DEFAULT_SCHEMA.event, "L1Mu") if f not in events.fields]
    if missing:
        raise ValueError(f"events lack {missing}; they need run, lumi, event and L1Mu (Muon is optional)")
    return events


def _schema_of(events: ak.Array) -> _Schema:
    event = tuple(f for f, s in _EVENT.items() if s.presence == _REQUIRED or f in events.fields)
    if "Muon" not in events.fields:
        return _Schema(event, None)
    present = set(ak.fields(events["Muon"]))
    offline = tuple(f for f, s in _OFFLINE.items() if s.presence != _OPTIONAL or f in present)
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
    counts, columns = _flatten(l1, _L1)
    missing = [f for f in _L1_WRITE_REQUIRED if f not in columns]
    if missing:
        raise ValueError(f"L1Mu lacks the hardware fields {missing}")
    n = len(columns["hwPt"])
    for field in _L1_WRITE_ZERO:
        columns.setdefault(field, np.zeros(n, np.int64))
    for field, derive in _L1_FROM_HW.items():
        if field not in columns:
            columns[field] = derive(columns)
    return _jagged({s.leaf: _cast(columns[f], s.dtype, f) for f, s in _L1.items()}, counts)


def _offline_leaves(muon: ak.Array, fields: tuple[str, ...]) -> ak.Array:
    """Muon records -> the Muon2RecoTree leaves, with e and et from pt, eta and the muon mass."""
    counts, columns = _flatten(muon, fields)
    missing = [f for f in fields if f not in columns and f not in _OFFLINE_WRITE_DEFAULT]
    if missing:
        raise ValueError(f"Muon lacks the fields {missing}")
    n = len(columns["pt"])
    for field, value in _OFFLINE_WRITE_DEFAULT.items():
        columns.setdefault(field, np.full(n, value, dtype=np.float32))
    leaves = {_OFFLINE[f].leaf: _cast(columns[f], _OFFLINE[f].dtype, f) for f in fields}
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
    (it is written through :func:`l1refit.io.atomic_path`). Each tree's jagged leaves share one counter branch
    ``nMuons``. ``events`` passed to :meth:`extend` have :func:`read`'s layout; ``L1Mu`` may hold only the
    hardware integers (``hwPt, hwEta, hwPhi, hwEtaAtVtx, hwPhiAtVtx, charge, hwQual, tfMuonIndex``; ``hwIso,
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
            raise ValueError(
                f"chunk's optional fields differ from the first chunk's: {schema} vs {self._schema}"
            )
        if len(events) == 0:
            return
        self._trees["event"].extend(
            {_EVENT[f].leaf: _cast(ak.to_numpy(events[f]), _EVENT[f].dtype, f) for f in schema.event}
        )
        self._trees["l1"].extend({"muon": _l1_leaves(events["L1Mu"])})
        if schema.offline is not None:
            self._trees["offline"].extend({"muon": _offline_leaves(events["Muon"], schema.offline)})

    def _create_trees(self, schema: _Schema) -> None:
        self._schema = schema
        shared = {"counter_name": lambda counted: COUNTER, "field_name": lambda outer, inner: inner}
        event_leaves = {_EVENT[f].leaf: _EVENT[f].dtype for f in schema.event}
        self._trees["event"] = self._file.mktree(TREES["event"], event_leaves)
        l1_type = _record_type({s.leaf: s.dtype for s in _L1.values()})
        self._trees["l1"] = self._file.mktree(self.l1_tree, {"muon": l1_type}, **shared)
        if schema.offline is not None:
            leaves = {_OFFLINE[f].leaf: _OFFLINE[f].dtype for f in schema.offline} | _OFFLINE_ENERGY
            offline_type = {"muon": _record_type(leaves)}
            self._trees["offline"] = self._file.mktree(TREES["offline"], offline_type, **shared)


def write(
    path: str | os.PathLike,
    events: ak.Array | Mapping[str, Any],
    *,
    l1_tree: str = TREES["l1"],
    compression: str = "lz4",
) -> None:
    """Write ``events`` (:func:`read`'s layout, see :class:`Writer`) to ``path`` in one go, atomically."""
    with Writer(path, l1_tree=l1_tree, compression=compression) as writer:
        writer.extend(events)
