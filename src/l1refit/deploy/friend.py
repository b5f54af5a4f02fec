"""The refit's ROOT friend-tree output: the re-fitted muons aligned entry by entry with a NanoAOD-like input.

A NanoAOD (one entry per event) or an L1 scouting NanoAOD (one entry per orbit and BX) keeps its muons in ``L1Mu``;
the friend tree has the same entries in the same order, ``nL1MuRefit`` (== ``nL1Mu``, entries without muons
included) and ``L1MuRefit_pt, _eta, _phi``, so ROOT (``AddFriend``), RDataFrame and coffea read it beside the input
without any index (docs/deploy.md §5). The input's event-identity branches are copied too: coffea's NanoAODSchema
refuses a tree without ``run, luminosityBlock, event``, and they let a user check the alignment. Each chunk's muon
counts are checked against the input's ``nL1Mu``. Other inputs have no entries to align with: Parquet is theirs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from l1refit.errors import L1RefitError

FRIEND_FORMATS = ("nanoaod", "l1scouting-nano")  # inputs whose entries a friend tree can follow
DEFAULT_TREE = "Friends"  # the name nanoAOD-tools gives its friend trees; unlike "Events", ROOT needs no alias
COLLECTION = "L1MuRefit"  # nL1MuRefit, L1MuRefit_pt: coffea's NanoAODSchema makes it a collection
FIELDS = ("pt", "eta", "phi")  # from refit_pt, refit_eta, refit_phi
METADATA_KEY = "l1refit_refit"  # a TObjString with the refit's metadata as JSON (model, input, ...)
COMPRESSION = uproot.LZ4(1)  # the refit values hardly compress: the fastest codec ROOT reads natively
IDENTITY = ("run", "luminosityBlock", "event", "orbitNumber", "bunchCrossing")  # copied where the input has them


class FriendError(L1RefitError, ValueError):
    """A friend-tree output that cannot be written: an input without entries to align with, a bad tree name."""


def output_kind(path: str | os.PathLike) -> str:
    """``friend`` for a ``.root`` output, else ``parquet``."""
    return "friend" if str(path).endswith(".root") else "parquet"


def check_input(output_path, input_path, fmt: str, tree: str) -> None:
    """A ``.root`` output needs a NanoAOD-like input and a plain tree name; else an error naming both files."""
    if fmt not in FRIEND_FORMATS:
        raise FriendError(
            f"{output_path}: a .root output is a friend tree aligned with the entries of a NanoAOD-like input "
            f"({', '.join(FRIEND_FORMATS)}), but {input_path} is {fmt}; write Parquet (.parquet) instead"
        )
    if not tree or any(c in tree for c in "/;: "):
        raise FriendError(f"{output_path}: friend tree name {tree!r} must be non-empty, without '/;:' or spaces")


class FriendWriter:
    """The friend tree of the NanoAOD-like ``source``, chunk by chunk: each :meth:`write` appends its next entries."""

    def __init__(self, path: str | os.PathLike, tree: str, metadata: dict[str, str], source: str | os.PathLike):
        self._source = uproot.open(source)
        self._events = self._source["Events"]
        self._identity = [name for name in IDENTITY if name in self._events.keys(recursive=False)]
        types = {k: v.dtype for k, v in self._events.arrays(self._identity, entry_stop=0, library="np").items()}
        empty = ak.unflatten(ak.zip({f: np.zeros(0, np.float32) for f in FIELDS}), np.zeros(0, np.int64))
        self._file = uproot.recreate(Path(path), compression=COMPRESSION)
        self._file[METADATA_KEY] = json.dumps(metadata, sort_keys=True)
        self._tree = self._file.mktree(
            tree, types | {COLLECTION: empty.type}, counter_name=lambda name: f"n{name}", field_name="{}_{}".format
        )
        self.n_entries = 0

    def write(self, counts: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> None:
        """Append ``len(counts)`` entries holding ``counts`` muons each (``pt, eta, phi`` in entry order)."""
        counts = np.asarray(counts, np.int64)
        start, stop = self.n_entries, self.n_entries + len(counts)
        source = self._events.arrays([*self._identity, "nL1Mu"], entry_start=start, entry_stop=stop, library="np")
        if int(counts.sum()) != len(pt) or not np.array_equal(source.pop("nL1Mu"), counts):
            raise AssertionError(f"entries {start}..{stop}: the refitted muons do not follow the input's nL1Mu")
        values = {f: np.asarray(v, np.float32) for f, v in zip(FIELDS, (pt, eta, phi), strict=True)}
        self._tree.extend(source | {COLLECTION: ak.unflatten(ak.zip(values), counts)})
        self.n_entries = stop

    def close(self) -> None:
        self._file.close()
        self._source.close()

    def __enter__(self) -> FriendWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
