"""BX records of the awkward layout packed into little-endian 32-bit words, and the words written to a file.

Shared by the Run-2 and Run-3 writers: only the muon stride (2 or 3 words) and the framing around the records
differ between the eras (docs/formats.md §3).
"""

from __future__ import annotations

import bz2
from dataclasses import dataclass

import awkward as ak
import numpy as np

from l1refit.formats.output import atomic_path
from l1refit.formats.scouting.records import HW_FIELDS

_MATCH_ALL = np.uint32(0xFF << 24 | 0xFF << 8)  # bxmatch, orbitmatch: every link agrees with link 0


@dataclass
class FlatRecords:
    """BX records as flat NumPy arrays, the muons of each record ordered slot 1 first."""

    orbit: np.ndarray
    bx: np.ndarray
    n_a: np.ndarray
    n_b: np.ndarray
    fields: dict[str, np.ndarray]
    slot: np.ndarray


def flatten(bx_records, max_per_slot: int) -> FlatRecords:
    """Check and flatten BX records of the layout; at most ``max_per_slot`` muons per slot and record."""
    arr = ak.Array(bx_records)
    missing = [name for name in ("orbit", "bx", "muons") if name not in arr.fields]
    if not missing:
        missing = [name for name in (*HW_FIELDS, "slot") if name not in arr.muons.fields]
    if missing:
        raise ValueError(f"bx_records lack the field(s) {', '.join(missing)} of the scouting layout")
    counts = ak.to_numpy(ak.num(arr.muons)).astype(np.int64)
    flat = ak.flatten(arr.muons)
    slot = ak.to_numpy(flat.slot).astype(np.int8)
    if slot.size and not np.all((slot == 1) | (slot == 2)):
        raise ValueError("muon slot must be 1 or 2")
    rec = np.repeat(np.arange(counts.size), counts)
    order = np.argsort(2 * rec + slot, kind="stable")
    n_b = np.bincount(rec[slot == 2], minlength=counts.size)
    n_a = counts - n_b
    if counts.size and max(n_a.max(), n_b.max()) > max_per_slot:
        raise ValueError(f"a BX record holds more than {max_per_slot} muons of one slot")
    fields = {name: ak.to_numpy(flat[name])[order] for name in HW_FIELDS}
    return FlatRecords(_uint32(arr.orbit, "orbit"), _uint32(arr.bx, "bx"), n_a, n_b, fields, slot[order])


def _uint32(values, name: str) -> np.ndarray:
    v = ak.to_numpy(values).astype(np.int64)
    if v.size and (v.min() < 0 or v.max() > 0xFFFFFFFF):
        raise ValueError(f"{name} must fit in 32 bits")
    return v.astype(np.uint32)


def pack_records(flat: FlatRecords, starts: np.ndarray, stride: int, words: np.ndarray, frames) -> None:
    """Put the BX record headers at word ``starts`` of ``words`` and the muons' frames after them."""
    words[starts] = (flat.n_a.astype(np.uint32) << 16) | flat.n_b.astype(np.uint32) | _MATCH_ALL
    words[starts + 1] = flat.bx
    words[starts + 2] = flat.orbit
    total = flat.n_a + flat.n_b
    first = np.cumsum(total) - total
    idx = np.repeat(starts + 3 - stride * first, total) + stride * np.arange(int(total.sum()))
    for k, frame in enumerate(frames):
        words[idx + k] = frame


def write_words(path, words: np.ndarray) -> None:
    """Write little-endian words atomically, bz2-compressed when the name ends in ``.bz2``."""
    data = memoryview(words.astype("<u4", copy=False)).cast("B")
    opener = bz2.open if str(path).endswith(".bz2") else open
    with atomic_path(path) as tmp, opener(tmp, "wb") as out:
        out.write(data)
