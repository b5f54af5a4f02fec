"""Run-3 L1 scouting files written by CMSSW: EDM ``OrbitCollection<l1ScoutingRun3::Muon>`` and L1 scouting NanoAOD.

Both are read with uproot into flat per-muon NumPy arrays (one row per muon, with run, lumi, orbit, bx and the
hardware integers); docs/formats.md §9 has the layouts and the CMSSW sources.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

import awkward as ak
import numpy as np
import uproot

from l1refit import scales
from l1refit.errors import FormatError

FORMATS = ("l1scouting-edm", "l1scouting-nano")
MUON_CLASS = "OrbitCollection<l1ScoutingRun3::Muon>"
N_BX_OFFSETS = 3566  # OrbitCollection's bxOffsets_: orbit buffer of 3565 BXs, plus the end
# output field <- l1ScoutingRun3::Muon member (DataFormats/L1Scouting/interface/L1ScoutingMuon.h)
EDM_MEMBERS = {
    "hwPt": "hwPt_", "hwEta": "hwEta_", "hwPhi": "hwPhi_", "hwQual": "hwQual_", "hwCharge": "hwChrg_",
    "chargeValid": "hwChrgv_", "hwIso": "hwIso_", "tfMuonIndex": "tfIndex_", "hwEtaAtVtx": "hwEtaAtVtx_",
    "hwPhiAtVtx": "hwPhiAtVtx_", "hwPtUnconstrained": "hwPtUnconstrained_", "hwDXY": "hwDXY_",
}  # fmt: skip
NANO_INTS = ("hwCharge", "hwQual", "tfMuonIndex", "hwDXY")  # always in L1 scouting NanoAOD
# hardware integer <- float branch of the same muon, when the hw branches are absent
NANO_FROM_FLOAT = {
    "hwPt": "pt", "hwEta": "eta", "hwPhi": "phi", "hwEtaAtVtx": "etaAtVtx", "hwPhiAtVtx": "phiAtVtx",
    "hwPtUnconstrained": "ptUnconstrained",
}  # fmt: skip
HW_DTYPES = {name: np.int16 for name in EDM_MEMBERS} | {"charge": np.int8, "chargeValid": np.bool_}
FLOATS = ("pt", "eta", "phi", "etaAtVtx", "phiAtVtx")
IDENTITY = {"run": np.uint32, "lumi": np.uint32, "orbit": np.uint32, "bx": np.uint32, "l1_index": np.uint8}
# chunk key of the NanoAOD readers: muons of every entry of the chunk, zeros included (not a per-muon column): what a
# friend tree aligned entry by entry with the input needs
ENTRY_COUNTS = "n_per_entry"
COLUMNS = (*(n for n in HW_DTYPES if n != "hwCharge"), *FLOATS)  # per-muon columns of :func:`iterate`
_TO_FLOAT = {  # hardware -> float32 in the scouting convention (L1TriggerScouting/Utilities conversion.h)
    "pt": lambda hw: scales.hw_to_pt(hw, "scouting"),
    "eta": lambda hw: scales.hw_to_eta(hw, "scouting"),
    "phi": lambda hw: scales.hw_to_phi(hw, "scouting"),
    "ptUnconstrained": lambda hw: scales.hw_to_pt_unconstrained(hw, "scouting"),
}
_FLOAT_OF = {"hwPt": "pt", "hwEta": "eta", "hwPhi": "phi", "hwEtaAtVtx": "eta", "hwPhiAtVtx": "phi",
             "hwPtUnconstrained": "ptUnconstrained"}  # fmt: skip
_HW_OF_FLOAT = {name: "hw" + name[0].upper() + name[1:] for name in FLOATS}  # pt <- hwPt, etaAtVtx <- hwEtaAtVtx


def _flat(offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Index of each row within its entry (``l1_index``), from the entries' row counts."""
    return (np.arange(int(counts.sum())) - np.repeat(offsets[:-1], counts)).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# EDM (data tier L1SCOUT), split level 99


def muon_branch(path, tree) -> tuple[str, dict[str, str]]:
    """The muon OrbitCollection branch (found by class) and its member sub-branches ``{member: full name}``."""
    found = [name for name, br in tree.iteritems(recursive=False) if MUON_CLASS in br.typename.replace(" ", "")]
    if not found:
        raise FormatError(
            path, f"no {MUON_CLASS} branch in tree Events: not an L1 scouting (L1SCOUT) EDM file with muons"
        )
    if len(found) > 1:
        raise FormatError(path, f"{len(found)} {MUON_CLASS} branches ({', '.join(found)}); keep one in the file")
    subs = {key.rsplit(".", 1)[-1]: key for key in tree[found[0]].keys(recursive=True, full_paths=True)}
    needed = ("bxOffsets_", *EDM_MEMBERS.values())
    if not all(m in subs for m in needed):
        raise FormatError(
            path,
            f"the {MUON_CLASS} is stored unsplit (split level 0, member-wise), which uproot cannot decode; re-write "
            "the file at split level 99 (PoolOutputModule splitLevel = 99) or use the L1 scouting NanoAOD",
            branch=f"{found[0]}obj",
        )
    return found[0], {m: f"{found[0]}/{subs[m]}" for m in needed}


def _aux_ids(path, tree, start: int, stop: int) -> dict[str, np.ndarray]:
    """run, lumi and orbit of each entry from the raw ``EventAuxiliary`` bytes (uproot's model of it fails).

    The L1 scouting DAQ source sets the event number to the orbit (DAQSourceModelsScoutingRun3.cc).
    Streamed layout: 6-byte header, processHistoryID_ (6-byte header, 1-byte length, hash), id_ (6-byte header,
    run_ u32, luminosityBlock_ u32, event_ u64), all big-endian.
    """
    raw = tree["EventAuxiliary"].array(uproot.AsJagged(uproot.AsDtype("u1")), entry_start=start, entry_stop=stop)
    data = np.asarray(ak.flatten(raw))
    begin = np.cumsum(np.asarray(ak.num(raw))) - np.asarray(ak.num(raw))
    at = begin + 13 + data[begin + 12].astype(np.int64)  # the EventID
    if np.any(at + 22 > len(data)) or np.any(data[np.minimum(at, len(data) - 1)] & 0x40 == 0):
        raise FormatError(path, "EventAuxiliary not in the expected layout (no EventID after the hash)")
    word = (at + 6)[:, None] + np.arange(16)
    ids = data[word].copy().view(">u4").reshape(-1, 4).astype(np.uint32)
    return {"run": ids[:, 0], "lumi": ids[:, 1], "orbit": ids[:, 3]}  # event_ as u64 = (ids[2], ids[3])


def _edm_chunks(path, step: int) -> Iterator[dict[str, np.ndarray]]:
    with uproot.open(path) as file:
        tree = file["Events"]
        _, branches = muon_branch(path, tree)
        for start in range(0, max(tree.num_entries, 1), step):
            stop = min(start + step, tree.num_entries)
            arrays = tree.arrays(list(branches.values()), entry_start=start, entry_stop=stop, how=dict)
            arrays = {m: arrays[name] for m, name in branches.items()}
            ids = _aux_ids(path, tree, start, stop)
            counts = np.asarray(ak.num(arrays["hwPt_"]), np.int64)
            offsets = arrays["bxOffsets_"]
            bx, index = bx_of_muons(
                path, np.asarray(ak.flatten(offsets), np.int64), np.asarray(ak.num(offsets)), counts
            )
            rows = {key: np.repeat(value, counts) for key, value in ids.items()} | {"bx": bx, "l1_index": index}
            hw = {name: np.asarray(ak.flatten(arrays[m])) for name, m in EDM_MEMBERS.items()}
            yield rows | _muon_columns(hw)
            if stop >= tree.num_entries:
                break


def bx_of_muons(path, flat_off: np.ndarray, n_off: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BX and position in the BX of every muon of a chunk of orbits, from their concatenated ``bxOffsets_``."""
    last = flat_off[np.cumsum(n_off) - 1] if len(n_off) else flat_off
    if np.any(n_off < 2) or not _monotone(flat_off, n_off):
        raise FormatError(path, "bxOffsets_ is not a non-decreasing list of offsets", branch="bxOffsets_")
    if np.any(last != counts):
        raise FormatError(path, "bxOffsets_ does not end at the muon count of its orbit", branch="bxOffsets_")
    glob = flat_off + np.repeat(np.cumsum(counts) - counts, n_off)  # offsets into the chunk: non-decreasing
    pos = np.searchsorted(glob, np.arange(int(counts.sum())), side="right") - 1
    orbit_of = np.repeat(np.arange(len(counts)), counts)
    bx = (pos - (np.cumsum(n_off) - n_off)[orbit_of]).astype(np.uint32)
    return bx, (np.arange(len(pos)) - glob[pos]).astype(np.uint8)


def _monotone(flat_off: np.ndarray, n_off: np.ndarray) -> bool:
    """Offsets non-decreasing within each orbit (they restart at 0 with the next)."""
    steps = np.diff(flat_off)
    firsts = np.cumsum(n_off)[:-1] - 1  # the step from one orbit's last offset to the next one's first
    steps[firsts] = 0
    return bool(np.all(steps >= 0))


def _muon_columns(hw: dict[str, np.ndarray], wanted: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """Hardware integers in the scouting layout's dtypes, the charge sign and the float32 values (scouting scales).

    Only what ``hw`` holds the source of; with ``wanted``, only the floats named there (each costs a conversion).
    """
    out = {name: np.asarray(hw[name]).astype(HW_DTYPES[name], copy=False) for name in HW_DTYPES if name in hw}
    if "hwCharge" in hw:
        out["charge"] = np.sign(out["hwCharge"]).astype(np.int8)
        if "chargeValid" not in hw:
            out["chargeValid"] = out["charge"] != 0
    out = {name: out[name] for name in HW_DTYPES if name in out}  # one column order whatever the source
    for name in FLOATS:
        source = _HW_OF_FLOAT[name]
        if source in out and (wanted is None or name in wanted):
            out[name] = np.asarray(_TO_FLOAT[_FLOAT_OF[source]](out[source]), np.float32)
    return out


# ---------------------------------------------------------------------------------------------------------------
# L1 scouting NanoAOD (OrbitNano): one entry per (orbit, BX)


def _nano_sources(columns: Collection[str] | None) -> list[str]:
    """The hardware values (:data:`NANO_INTS`, :data:`NANO_FROM_FLOAT`) that the per-muon ``columns`` come from."""
    if columns is None:
        return [*NANO_INTS, *NANO_FROM_FLOAT]
    sources = {_HW_OF_FLOAT.get(c, "hwCharge" if c in ("charge", "chargeValid") else c) for c in columns}
    return [name for name in (*NANO_INTS, *NANO_FROM_FLOAT) if name in sources]


def _nano_chunks(path, step: int, columns: Collection[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
    with uproot.open(path) as file:
        tree = file["Events"]
        names = set(tree.keys())
        if "nL1Mu" not in names:
            raise FormatError(path, "no L1Mu collection in tree Events: no muons to read", branch="nL1Mu")
        hw_present = all(f"L1Mu_{n}" in names for n in NANO_FROM_FLOAT)
        muon = [*NANO_INTS, *(NANO_FROM_FLOAT if hw_present else NANO_FROM_FLOAT.values())]
        entry = ["run", "luminosityBlock", "orbitNumber", "bunchCrossing", "nL1Mu"]
        absent = [name for name in (*entry, *(f"L1Mu_{n}" for n in muon)) if name not in names]
        if absent:
            raise FormatError(path, "branch missing in tree Events of an L1 scouting NanoAOD", branch=absent[0])
        sources = _nano_sources(columns)  # only the branches that the columns need are read
        read = {n: n if hw_present or n in NANO_INTS else NANO_FROM_FLOAT[n] for n in sources}
        for arrays in tree.iterate([*entry, *(f"L1Mu_{b}" for b in read.values())], step_size=step, how=dict):
            counts = np.asarray(arrays["nL1Mu"], np.int64)
            rows = {
                key: np.repeat(np.asarray(arrays[branch]).astype(IDENTITY[key], copy=False), counts)
                for key, branch in (("run", "run"), ("lumi", "luminosityBlock"), ("orbit", "orbitNumber"),
                                    ("bx", "bunchCrossing"))
            }  # fmt: skip
            rows["l1_index"] = _flat(np.concatenate([[0], np.cumsum(counts)]), counts)
            flat = {n: np.asarray(ak.flatten(arrays[f"L1Mu_{b}"])) for n, b in read.items()}
            for hw, branch in read.items():
                if branch != hw:  # a float: its hardware integer, checked to be on the grid
                    flat[hw] = _to_hardware(path, f"L1Mu_{branch}", flat[hw], hw)
            yield rows | _muon_columns(flat, columns) | {ENTRY_COUNTS: counts}


def _to_hardware(path, branch: str, values: np.ndarray, hw_name: str) -> np.ndarray:
    """The hardware integers whose scouting-scale float32 is ``values`` exactly; else a FormatError with the value."""
    x = values.astype(np.float64)
    if hw_name == "hwPt":
        hw = np.rint(x / scales.PT_LSB) + 1
    elif hw_name == "hwPtUnconstrained":
        hw = np.rint(x) + 1
    elif "Eta" in hw_name:
        hw = np.rint(x / scales.ETA_LSB)
    else:
        hw = np.mod(np.rint(np.mod(x, 2 * np.pi) / scales.PHI_LSB), scales.N_PHI)
    back = np.asarray(_TO_FLOAT[_FLOAT_OF[hw_name]](hw.astype(np.int64)), np.float32)
    bad = np.flatnonzero(back != values.astype(np.float32))
    if len(bad):
        raise FormatError(
            path,
            f"value {values[bad[0]]!r} is not on the hardware grid (nearest {hw_name} {int(hw[bad[0]])} gives "
            f"{back[bad[0]]!r}); {len(bad)} such value(s)",
            branch=branch,
        )
    return hw.astype(np.int16)


def write_nano(path, rows: dict[str, np.ndarray], *, hardware: bool = True) -> None:
    """:func:`l1refit.formats.l1scouting_write.write_nano`, under the name its callers know (imported lazily: the
    writer imports this module)."""
    from l1refit.formats import l1scouting_write

    l1scouting_write.write_nano(path, rows, hardware=hardware)


# ---------------------------------------------------------------------------------------------------------------
# the format's entry points


def iterate(path, fmt: str, step_size: int, columns: Collection[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Per chunk of ``step_size`` entries (orbits for EDM, BXs for NanoAOD): one row per muon as NumPy arrays.

    NanoAOD chunks also carry :data:`ENTRY_COUNTS`, the muon count of each of their entries (not a row column).
    With ``columns`` (per-muon columns), a NanoAOD reader reads and converts only what they need (the refit); the
    identity columns come always.
    """
    if fmt == "l1scouting-edm":
        return _edm_chunks(path, step_size)
    if fmt == "l1scouting-nano":
        return _nano_chunks(path, step_size, columns)
    raise ValueError(f"unknown L1 scouting format {fmt!r}; allowed: {', '.join(FORMATS)}")


def summarize(path, fmt: str, *, n_first: int = 3, step_size: int = 100_000) -> dict:
    """What ``l1refit inspect`` prints: runs, orbits, BXs with muons, muons and the first muons."""
    n_muons, keys, runs, first = 0, [], set(), []
    for rows in iterate(path, fmt, step_size):
        rows.pop(ENTRY_COUNTS, None)
        n_muons += len(rows["hwPt"])
        keys.append(np.unique(rows["orbit"].astype(np.uint64) << np.uint64(12) | rows["bx"].astype(np.uint64)))
        runs.update(np.unique(rows["run"]).tolist())
        if len(first) < n_first:
            take = {k: v[: n_first - len(first)].tolist() for k, v in rows.items()}
            first += [dict(zip(take, values, strict=True)) for values in zip(*take.values(), strict=True)]
    bx_keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.uint64)
    with uproot.open(path) as file:
        branch = muon_branch(path, file["Events"])[0] if fmt == "l1scouting-edm" else "L1Mu (nL1Mu)"
        n_entries = file["Events"].num_entries
    return {
        "path": str(path), "format": fmt, "n_entries": n_entries, "runs": sorted(runs),
        "n_orbits": len(np.unique(bx_keys >> np.uint64(12))), "n_bx": len(bx_keys), "n_muons": n_muons,
        "collection": branch, "first_muons": first,
    }  # fmt: skip
