"""Reading L1Ntuples, in the CMSSW split layout or this project's flat one, into coffea candidates.

``cmssw-split`` is what ``L1Trigger/L1TNtuples`` writes (one split class branch per tree, leaves such as
``L1Upgrade/muonEt``); ``flat`` is what :class:`.writer.Writer` writes (the same leaves as top-level branches).
The trees line up by entry index only, so they are always read over the same entry range. Every value is the
one stored in the file, dtype included. The event layout is in docs/formats.md §4.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
from coffea.nanoevents.methods import candidate

from l1refit.errors import FormatError
from l1refit.formats.l1ntuple.layout import (
    CANDIDATE,
    MUON_MASS,
    OFFLINE,
    OPTIONAL,
    REQUIRED,
    SPLIT_BRANCH,
    TABLES,
    TREES,
    ZERO,
)


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
    for field, spec in TABLES[kind].items():
        spellings = (f"{SPLIT_BRANCH[kind]}/{spec.leaf}", spec.leaf)
        key = next((k for k in spellings if k in available), None)
        if key is not None:
            keys[field] = key
        elif spec.presence == REQUIRED:
            raise FormatError(path, f"tree {name!r} has no branch {spec.leaf!r}", branch=spec.leaf)
        elif spec.presence == ZERO:
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
    for field, spec in TABLES[kind].items():
        if field in flat:
            fields[field] = flat[field]
        elif spec.presence == ZERO:
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
            leaf = TABLES[tree.kind][field].leaf
            what = f"tree {tree.name!r}: multiplicities differ from the pt leaf's"
            raise FormatError(src.path, what, branch=leaf)
        flat[field] = ak.to_numpy(ak.flatten(array, axis=1))
    return _zip_candidates(flat, counts, tree.kind, mass)


def _empty_offline(n_events: int) -> ak.Array:
    flat = {f: np.zeros(0, s.dtype) for f, s in OFFLINE.items() if s.presence != OPTIONAL}
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
        trees = {name: list(file[name].keys()) for name, cls in file.classnames(cycle=False).items() if cls == "TTree"}
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
