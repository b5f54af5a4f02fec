"""Reading NanoAOD ``Events`` into the skim's event layout (``L1Mu`` and ``Muon`` coffea candidates) or refit rows.

Hardware integers come from the ``hw*`` branches where the file has them (``full`` flavour), else from the floats,
exactly (:func:`recover_hardware`). The L1 physical values are rebuilt from the integers in the CMSSW convention, so
they are the values an L1Ntuple of the same events holds (the 12-bit rounding of the central floats is undone).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import awkward as ak
import numpy as np
import uproot

from l1refit import scales
from l1refit.errors import FormatError
from l1refit.formats.l1ntuple.layout import CANDIDATE, MUON_MASS
from l1refit.formats.nanoaod.layout import (
    CENTRAL_CUT,
    EVENT,
    ID_FIELDS,
    L1_FLOAT_BITS,
    L1_FLOATS,
    MUON_REQUIRED,
    hardware_guess,
    l1_float,
)

_FLOAT_FIELDS = ("pt", "eta", "phi", "etaSt2", "phiSt2")


@dataclass(frozen=True)
class Info:
    """What a NanoAOD offers: entries, the L1 flavour (``full``: hw branches), tfMuonIndex, offline muons, PV_z."""

    path: str
    n_entries: int
    flavour: str  # "central" or "full"
    has_tf_index: bool
    has_muon: bool
    has_dz: bool
    branches: frozenset

    @property
    def barrel_rule(self) -> str:
        """How the barrel is selected: ``tf_muon_index`` where the file has it, else ``eta`` (|η| at the station)."""
        return "tf_muon_index" if self.has_tf_index else "eta"

    @property
    def note(self) -> str:
        """What the file's own L1 table cut away before us (the central table's cut), or ''."""
        return f"the central NanoAOD L1Mu table keeps only {CENTRAL_CUT}" if self.flavour == "central" else ""


def _events_tree(path, file):
    if "Events" not in file.keys(cycle=False):
        raise FormatError(path, "no Events tree: not a NanoAOD")
    return file["Events"]


def describe(path, *, require_offline: bool = False) -> Info:
    """The :class:`Info` of a NanoAOD; no ``L1Mu`` (or no ``Muon`` with ``require_offline``) is a FormatError."""
    with uproot.open(path) as file:
        tree = _events_tree(path, file)
        names = frozenset(tree.keys(recursive=False))
        n_entries = tree.num_entries
    if "nL1Mu" not in names:
        raise FormatError(
            path, "no L1Mu collection in tree Events (a NanoAOD without the L1 table, e.g. MC): no L1 muons to read",
            branch="nL1Mu",
        )  # fmt: skip
    absent = [f"L1Mu_{f}" for f in (*L1_FLOATS, "hwCharge", "hwQual") if f"L1Mu_{f}" not in names]
    absent += [leaf for leaf, _ in EVENT.values() if leaf not in names]
    if absent:
        raise FormatError(path, "branch missing in tree Events of a NanoAOD", branch=absent[0])
    has_muon = "nMuon" in names and all(f"Muon_{f}" in names for f in MUON_REQUIRED)
    if require_offline and not has_muon:
        missing = next(b for b in ("nMuon", *(f"Muon_{f}" for f in MUON_REQUIRED)) if b not in names)
        raise FormatError(path, "no offline muons (Muon) in tree Events: a training dataset needs them", branch=missing)
    full = all(f"L1Mu_{hw}" in names for hw, _ in L1_FLOATS.values())
    return Info(
        str(path), n_entries, "full" if full else "central", "L1Mu_tfMuonIndex" in names, has_muon,
        {"PV_z", "Muon_dz"} <= names, names,
    )  # fmt: skip


def recover_hardware(path, branch: str, values: np.ndarray, kind: str) -> np.ndarray:
    """Hardware integers (int16) whose NanoAOD float is exactly ``values``; else a FormatError naming the value.

    A float matches if it is the CMSSW value rounded to the central 12-bit mantissa, or at full float32 precision
    (checked only for the values the first test rejects).
    """
    hw = hardware_guess(values, kind)
    stored = np.asarray(values, dtype=np.float32)
    off = np.flatnonzero(l1_float(hw, kind, L1_FLOAT_BITS) != stored)
    if off.size:
        off = off[l1_float(hw[off], kind, None) != stored[off]]
    if off.size:
        bad = int(off[0])
        raise FormatError(
            path,
            f"value {float(stored[bad])!r} is not on the uGMT hardware grid (nearest integer {int(hw[bad])} gives "
            f"{float(l1_float(hw[bad : bad + 1], kind)[0])!r}); {off.size} such value(s)",
            branch=branch,
        )
    return hw.astype(np.int16)


def _charge(path, hw_charge: np.ndarray) -> np.ndarray:
    """The charge sign from NanoAOD's ``hwCharge`` (the raw sign bit: 0 = μ+, 1 = μ−)."""
    if hw_charge.size and not np.isin(hw_charge, (0, 1)).all():
        bad = hw_charge[~np.isin(hw_charge, (0, 1))][0]
        raise FormatError(path, f"hwCharge {int(bad)} is not a sign bit (0 = mu+, 1 = mu-)", branch="L1Mu_hwCharge")
    return (1 - 2 * hw_charge.astype(np.int8)).astype(np.int8)


_FLOAT_OF = {hw: (name, kind) for name, (hw, kind) in L1_FLOATS.items()}  # hwPt -> ("pt", "pt"), ...
# physical float32 of the skim/refit (CMSSW convention, from the integers) -> the integer it is made of
_PHYSICAL = {"pt": "hwPt", "eta": "hwEtaAtVtx", "phi": "hwPhiAtVtx", "etaSt2": "hwEta", "phiSt2": "hwPhi"}
_TO_FLOAT = {"hwPt": scales.hw_to_pt, "hwEtaAtVtx": scales.hw_to_eta, "hwPhiAtVtx": scales.hw_to_phi,
             "hwEta": scales.hw_to_eta, "hwPhi": scales.hw_to_phi}  # fmt: skip
L1_COLUMNS = (*_FLOAT_OF, "charge", "hwQual", "hwDXY", "bx", "tfMuonIndex", *_PHYSICAL)


def _needed(info: Info, columns) -> set[str]:
    """The L1 columns to build: ``columns`` (all of :data:`L1_COLUMNS` if None), with the integers they are made of."""
    wanted = set(L1_COLUMNS if columns is None else columns)
    wanted |= {_PHYSICAL[name] for name in wanted if name in _PHYSICAL}
    return wanted if info.has_tf_index else wanted - {"tfMuonIndex"}


def _l1_columns(path, arrays: dict, info: Info, wanted: set[str]) -> dict[str, np.ndarray]:
    """Flat L1 muon columns: hardware integers (int16), charge, tfMuonIndex if present, CMSSW-convention floats."""
    flat = {name[5:]: np.asarray(ak.flatten(arrays[name])) for name in arrays if name.startswith("L1Mu_")}
    n = len(next(iter(flat.values()))) if flat else 0
    out = {}
    for hw in wanted & set(_FLOAT_OF):
        name, kind = _FLOAT_OF[hw]
        out[hw] = flat[hw].astype(np.int16) if info.flavour == "full" else recover_hardware(
            path, f"L1Mu_{name}", flat[name], kind
        )  # fmt: skip
    if "charge" in wanted:
        out["charge"] = _charge(path, flat["hwCharge"])
    for name in wanted & {"hwQual", "hwDXY", "bx", "tfMuonIndex"}:
        out[name] = flat[name].astype(np.int16) if name in flat else np.zeros(n, np.int16)
    for name in wanted & set(_PHYSICAL):
        out[name] = _TO_FLOAT[_PHYSICAL[name]](out[_PHYSICAL[name]]).astype(np.float32)
    return out


def _branches(info: Info, offline: bool, wanted: set[str]) -> list[str]:
    l1 = [n for n in wanted if n in ("hwQual", "hwDXY", "bx", "tfMuonIndex")]
    l1 += ["hwCharge"] if "charge" in wanted else []
    l1 += [hw if info.flavour == "full" else _FLOAT_OF[hw][0] for hw in wanted & set(_FLOAT_OF)]
    out = [leaf for leaf, _ in EVENT.values()] + ["nL1Mu"] + [f"L1Mu_{f}" for f in sorted(l1)]
    if offline:
        out += ["nMuon", *(f"Muon_{f}" for f in (*MUON_REQUIRED, *ID_FIELDS.values()))]
        if info.has_dz:
            out += ["PV_z", "Muon_dz"]
    return [name for name in out if name in info.branches]


def _offline(arrays: dict, info: Info) -> ak.Array:
    """The ``Muon`` candidates: pt, eta, phi, mass, charge, the ID flags under the L1Ntuple names, and z0 (m)."""
    counts = np.asarray(arrays["nMuon"], np.int64)
    flat = {f: np.asarray(ak.flatten(arrays[f"Muon_{f}"])) for f in MUON_REQUIRED}
    fields = {
        "pt": flat["pt"].astype(np.float32), "eta": flat["eta"].astype(np.float32),
        "phi": flat["phi"].astype(np.float32), "mass": np.full(flat["pt"].size, MUON_MASS, np.float32),
        "charge": flat["charge"].astype(np.int32),
    }  # fmt: skip
    for name, branch in ID_FIELDS.items():
        key = f"Muon_{branch}"
        fields[name] = np.asarray(ak.flatten(arrays[key]), bool) if key in arrays else np.ones(flat["pt"].size, bool)
    if info.has_dz:  # the track's z at the beam line, cm -> m
        pv_z = np.repeat(np.asarray(arrays["PV_z"], np.float64), counts)
        fields["z0"] = ((pv_z + np.asarray(ak.flatten(arrays["Muon_dz"]), np.float64)) / 100.0).astype(np.float32)
    else:
        fields["z0"] = np.zeros(flat["pt"].size, np.float32)
    return ak.unflatten(ak.zip(fields, with_name=CANDIDATE), counts)


def iterate(path, *, step_size: int = 200_000, require_offline: bool = True) -> Iterator[ak.Array]:
    """Chunks of ``step_size`` events as the skim reads them: ``run, lumi, event, bx``, ``L1Mu`` and ``Muon``.

    ``L1Mu`` has the L1Ntuple reader's fields (``pt, eta, phi`` at the vertex, ``etaSt2, phiSt2`` the muon-system
    coordinates, the hardware integers, ``charge`` ±1, ``bx``; ``tfMuonIndex`` only where the file has it). ``Muon``
    has no station-2 coordinates (NanoAOD has none: the skim propagates the muons) but ``z0``, the vertex z in m
    (``PV_z + Muon_dz`` where present, else 0).
    """
    from coffea.nanoevents.methods import candidate  # imported here: coffea takes a second to load

    info = describe(path, require_offline=require_offline)
    offline, wanted = info.has_muon, _needed(info, None)
    with uproot.open(path) as file:
        for arrays in _events_tree(path, file).iterate(_branches(info, offline, wanted), step_size=step_size, how=dict):
            counts = np.asarray(arrays["nL1Mu"], np.int64)
            cols = _l1_columns(path, arrays, info, wanted)
            cols["mass"] = np.full(cols["pt"].size, MUON_MASS, np.float32)
            l1 = ak.unflatten(ak.zip(cols, with_name=CANDIDATE), counts)
            fields = {name: np.asarray(arrays[leaf]).astype(dtype) for name, (leaf, dtype) in EVENT.items()}
            fields["L1Mu"] = l1
            if offline:
                fields["Muon"] = _offline(arrays, info)
            yield ak.zip(fields, depth_limit=1, behavior=candidate.behavior)


def l1_rows(path, step_size: int, columns=None) -> Iterator[dict[str, np.ndarray]]:
    """Per chunk of entries, one row per L1 muon (the refit's input), and ``n_per_entry`` (nL1Mu of every entry).

    Rows: ``run, lumi, event`` of the entry, ``entry`` (its index in the tree), ``l1_index``, and of the L1 columns
    (the hardware integers, ``charge``, ``hwQual``, ``hwDXY``, ``bx``, ``tfMuonIndex`` where the file has it, and the
    CMSSW-convention floats ``pt``, ``eta``/``phi`` at the muon system, ``etaAtVtx``/``phiAtVtx``) those named in
    ``columns`` (all if None); only the branches they need are read and converted.
    """
    info = describe(path)
    names = {"eta": "etaSt2", "phi": "phiSt2", "etaAtVtx": "eta", "phiAtVtx": "phi"}  # row name -> column name
    wanted = _needed(info, None if columns is None else [names.get(c, c) for c in columns if c != "entry"])
    first = 0
    with uproot.open(path) as file:
        for arrays in _events_tree(path, file).iterate(_branches(info, False, wanted), step_size=step_size, how=dict):
            counts = np.asarray(arrays["nL1Mu"], np.int64)
            cols = _l1_columns(path, arrays, info, wanted)
            starts = np.cumsum(counts) - counts
            event = np.repeat(np.arange(counts.size), counts)  # the entry of each muon, within the chunk
            rows = {name: np.asarray(arrays[leaf]).astype(dtype, copy=False)[event]
                    for name, (leaf, dtype) in EVENT.items() if name != "bx"}  # fmt: skip
            rows["entry"] = (event + first).astype(np.uint64)
            rows["l1_index"] = (np.arange(event.size) - starts[event]).astype(np.uint8)
            rows |= {name: value for name, value in cols.items() if name not in _FLOAT_FIELDS}
            rows |= {row: cols[column] for row, column in (("pt", "pt"), *((r, c) for r, c in names.items()))
                     if column in cols}  # fmt: skip
            rows["n_per_entry"] = counts
            first += counts.size
            yield rows


def summarize(path, *, n_first: int = 3, step_size: int = 200_000) -> dict:
    """What ``l1refit inspect`` prints: entries, runs, flavour, L1 and offline muon counts, the table's cut."""
    info = describe(path)
    n_l1 = n_muon = 0
    runs: set[int] = set()
    first: list[dict] = []
    with uproot.open(path) as file:
        tree = _events_tree(path, file)
        wanted = ["run", "nL1Mu", *(["nMuon"] if info.has_muon else [])]
        for arrays in tree.iterate(wanted, step_size=step_size, how=dict):
            n_l1 += int(np.sum(arrays["nL1Mu"]))
            n_muon += int(np.sum(arrays["nMuon"])) if info.has_muon else 0
            runs.update(np.unique(np.asarray(arrays["run"])).tolist())
    for rows in l1_rows(path, step_size):
        take = {k: v[: n_first - len(first)].tolist() for k, v in rows.items() if k != "n_per_entry"}
        first += [dict(zip(take, values, strict=True)) for values in zip(*take.values(), strict=True)]
        if len(first) >= n_first:
            break
    return {
        "path": str(path), "format": "nanoaod", "n_entries": info.n_entries, "runs": sorted(runs),
        "flavour": info.flavour, "barrel_rule": info.barrel_rule, "table_cut": info.note or "none",
        "n_l1_muons": n_l1, "n_offline_muons": n_muon if info.has_muon else None, "first_muons": first,
    }  # fmt: skip
