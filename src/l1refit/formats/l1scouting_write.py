"""Writing L1 scouting NanoAOD (CMSSW's OrbitNano layout, docs/formats.md §9): tests, benchmarks, ``l1refit convert``.

The floats come from the hardware integers with the scouting scales, as :mod:`l1refit.formats.l1scouting` reads
them back; one entry per orbit and BX.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from l1refit.formats.l1scouting import _TO_FLOAT, FLOATS, IDENTITY, NANO_FROM_FLOAT, _muon_columns

NANO_INT_TYPES = {"hwCharge": np.int16, "hwQual": np.int16, "tfMuonIndex": np.uint16, "hwDXY": np.uint16}


def write_nano(path, rows: dict[str, np.ndarray], *, hardware: bool = True) -> None:
    """A synthetic L1 scouting NanoAOD from per-muon rows sorted by (orbit, bx) (tests, examples).

    ``rows`` has run, lumi, orbit, bx and the hardware integers of :data:`EDM_MEMBERS` (``hwCharge`` ±1); the
    floats come from the scouting scales; with ``hardware`` the int16 ``hw*`` branches are written too.
    """
    key = np.asarray(rows["orbit"], np.int64) * 4096 + np.asarray(rows["bx"], np.int64)
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    with NanoWriter(path, hardware=hardware) as writer:
        writer.extend({k: np.asarray(rows[k])[first] for k in IDENTITY if k != "l1_index"}, rows,
                      np.diff(np.r_[first, len(key)]))  # fmt: skip


class NanoWriter:
    """An L1 scouting NanoAOD written chunk by chunk (:func:`write_nano`, ``l1refit convert --to l1scouting-nano``).

    Each :meth:`extend` appends entries (one per orbit and BX, as CMSSW's OrbitNano writes them); the ``Events``
    tree is made at the first call, or empty at the end, so an input without muons gives a valid empty file.
    """

    def __init__(self, path, *, hardware: bool = True, compression: uproot.compression.Compression | None = None):
        self.hardware, self.n_entries, self.n_muons = hardware, 0, 0
        options = {} if compression is None else {"compression": compression}  # uproot's default: ZLIB level 1
        self._file = uproot.recreate(Path(path), **options)
        self._tree = None

    def extend(self, entries: dict[str, np.ndarray], muons: dict[str, np.ndarray], counts: np.ndarray) -> None:
        """Append ``len(counts)`` entries: ``entries`` has run, lumi, orbit, bx per entry; ``muons`` the hardware
        integers of their ``counts.sum()`` muons in entry order (``hwCharge`` ±1, 0 when not valid)."""
        cols = _muon_columns(muons)
        mu = {n: np.asarray(muons[n], t) for n, t in NANO_INT_TYPES.items()} | {f: cols[f] for f in FLOATS}
        mu["ptUnconstrained"] = np.asarray(_TO_FLOAT["ptUnconstrained"](cols["hwPtUnconstrained"]), np.float32)
        if self.hardware:
            mu |= {n: cols[n] for n in NANO_FROM_FLOAT}
        events = {
            "run": np.asarray(entries["run"], np.uint32), "luminosityBlock": np.asarray(entries["lumi"], np.uint32),
            "orbitNumber": np.asarray(entries["orbit"], np.uint32),
            "bunchCrossing": np.asarray(entries["bx"], np.uint16),
            "L1Mu": ak.unflatten(ak.zip(mu), np.asarray(counts, np.int64)),
        }  # fmt: skip
        if self._tree is None:
            self._tree = _mktree(self._file, events)
        self._tree.extend(events)
        self.n_entries += len(counts)
        self.n_muons += int(np.sum(counts))

    def close(self) -> None:
        if self._tree is None:  # nothing written: the empty tree, with every branch
            empty = {n: np.zeros(0, np.int16) for n in (*NANO_INT_TYPES, *NANO_FROM_FLOAT)}
            self.extend(dict.fromkeys(("run", "lumi", "orbit", "bx"), np.zeros(0, np.uint32)), empty, np.zeros(0))
        self._file.close()

    def __enter__(self) -> NanoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _mktree(file, events: dict):
    types = {name: value.type if isinstance(value, ak.Array) else value.dtype for name, value in events.items()}
    return file.mktree("Events", types, counter_name=lambda name: f"n{name}", field_name="{}_{}".format)


def write_events(path, events: dict) -> None:
    """Write NumPy entry branches and the muon records ``events["L1Mu"]`` as flat NanoAOD branches (nL1Mu, L1Mu_pt)."""
    with uproot.recreate(Path(path)) as file:
        _mktree(file, events).extend(events)
