"""Writing NanoAOD-layout files from L1Ntuple-layout events (the synthetic detector's, or a converted L1Ntuple).

``central`` writes what prompt NanoAOD has: the table's cut, 12-bit-mantissa L1 floats, ``hwCharge`` 0/1, no
``hw*`` integers, no ``tfMuonIndex``, no station-2 coordinates of the offline muons; ``full`` adds the integers and
``tfMuonIndex`` (the ``L1FULL`` flavour). docs/formats.md §10.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from l1refit.formats.nanoaod.layout import (
    BX_RANGE,
    CENTRAL_MIN_PT,
    CENTRAL_MIN_QUALITY,
    EVENT,
    FLAVOURS,
    ID_FIELDS,
    L1_CENTRAL_INTS,
    L1_FLOATS,
    L1_FULL_INTS,
    MUON,
    MUON_ANGLE_BITS,
    l1_float,
    round_mantissa,
)
from l1refit.formats.output import atomic_path


def _flat(collection: ak.Array) -> tuple[np.ndarray, ak.Array]:
    return ak.to_numpy(ak.num(collection, axis=1)), ak.flatten(collection, axis=1)


def _l1(events: ak.Array, flavour: str) -> ak.Array:
    """The ``L1Mu`` records as NanoAOD stores them (central: only the table's cut survives)."""
    counts, mu = _flat(events["L1Mu"])
    hw = {name: ak.to_numpy(mu[name]) if name in mu.fields else np.zeros(len(mu), np.int16)
          for name in ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "hwPtUnconstrained", "hwDXY")}  # fmt: skip
    bx = ak.to_numpy(mu["bx"]) if "bx" in mu.fields else np.zeros(len(mu), np.int16)
    keep = (bx >= BX_RANGE[0]) & (bx <= BX_RANGE[1])
    out = {name: l1_float(hw[source], kind) for name, (source, kind) in L1_FLOATS.items()}
    out |= {"hwCharge": (ak.to_numpy(mu["charge"]) < 0), "hwQual": ak.to_numpy(mu["hwQual"]),
            "hwDXY": hw["hwDXY"], "bx": bx}  # fmt: skip
    out = {name: np.asarray(value).astype(L1_CENTRAL_INTS.get(name, np.float32)) for name, value in out.items()}
    if flavour == "full":
        out |= {name: hw[name].astype(dtype) for name, dtype in L1_FULL_INTS.items() if name in hw}
        out["tfMuonIndex"] = ak.to_numpy(mu["tfMuonIndex"]).astype(L1_FULL_INTS["tfMuonIndex"])
    else:
        keep &= (out["pt"] >= CENTRAL_MIN_PT) & (out["hwQual"] >= CENTRAL_MIN_QUALITY)
    event = np.repeat(np.arange(counts.size), counts)
    return ak.unflatten(ak.zip({k: v[keep] for k, v in out.items()}), np.bincount(event[keep], minlength=counts.size))


def _muons(events: ak.Array) -> ak.Array:
    """The ``Muon`` records: pt at full precision, η and φ at 16 mantissa bits, the IDs, dz (cm) from z0 (m)."""
    counts, mu = _flat(events["Muon"])
    n = len(mu)
    out = {
        "pt": ak.to_numpy(mu["pt"]),
        "eta": round_mantissa(ak.to_numpy(mu["eta"]).astype(np.float32), MUON_ANGLE_BITS),
        "phi": round_mantissa(ak.to_numpy(mu["phi"]).astype(np.float32), MUON_ANGLE_BITS),
        "charge": ak.to_numpy(mu["charge"]),
        **{branch: ak.to_numpy(mu[name]) for name, branch in ID_FIELDS.items()},
        "dz": ak.to_numpy(mu["z0"]) * 100.0 if "z0" in mu.fields else np.zeros(n),
        "pfRelIso04_all": ak.to_numpy(mu["iso"]) if "iso" in mu.fields else np.zeros(n),
    }
    return ak.unflatten(ak.zip({k: np.asarray(v).astype(MUON[k]) for k, v in out.items()}), counts)


class Writer:
    """``with Writer(path) as w: w.extend(events)``: a NanoAOD ``Events`` tree, written atomically.

    ``events`` are L1Ntuple-layout events (fields ``run, lumi, event, bx``, ``L1Mu`` with the hardware integers,
    ``charge`` ±1, ``hwQual``, ``tfMuonIndex``, ``bx``; optionally ``Muon``). The primary vertex is at z = 0
    (``PV_z``), so ``Muon_dz`` is the muon's own vertex z.
    """

    def __init__(self, path: str | os.PathLike, *, flavour: str = "central", compression=None):
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown NanoAOD flavour {flavour!r}; allowed: {', '.join(FLAVOURS)}")
        self.path, self.flavour = Path(path), flavour
        self.compression = uproot.LZ4(1) if compression is None else compression  # CMS writes LZMA or ZSTD
        self._stack: contextlib.ExitStack | None = None
        self._file = self._tree = None

    def __enter__(self) -> Writer:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._file = stack.enter_context(uproot.recreate(tmp, compression=self.compression))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        stack, self._stack = self._stack, None
        self._file = self._tree = None
        stack.__exit__(exc_type, exc, tb)

    def extend(self, events: ak.Array | Mapping[str, Any]) -> None:
        """Append a chunk of events (each chunk with or without ``Muon`` like the first)."""
        if self._file is None:
            raise RuntimeError("Writer is not open: use it as `with Writer(path) as writer:`")
        branches = {leaf: ak.to_numpy(events[name]).astype(dtype) for name, (leaf, dtype) in EVENT.items()}
        branches["L1Mu"] = _l1(events, self.flavour)
        if "Muon" in ak.fields(events):
            branches["PV_z"] = np.zeros(len(events), np.float32)
            branches["Muon"] = _muons(events)
        if self._tree is None:
            types = {name: v.type if isinstance(v, ak.Array) else v.dtype for name, v in branches.items()}
            self._tree = self._file.mktree(
                "Events", types, counter_name=lambda name: f"n{name}", field_name="{}_{}".format
            )
        self._tree.extend(branches)
