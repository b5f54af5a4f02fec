"""``l1refit convert`` for the Run-3 formats: NanoAOD and L1 scouting files to Parquet, and L1 scouting NanoAOD out.

* NanoAOD, L1 scouting EDM or NanoAOD → Parquet: one row per L1 muon, the columns of their readers (identity, the
  hardware integers, the floats; docs/formats.md §9).
* L1Ntuple, scouting raw or L1 scouting EDM → L1 scouting NanoAOD (``--to l1scouting-nano``): one entry per BX
  record (L1Ntuple: per event and muon BX, as for scouting raw; EDM: per orbit and BX), written chunk by chunk by
  :class:`l1refit.formats.l1scouting_write.NanoWriter` with the hardware branches. Muons with hwPt = 0 or hwQual = 0 are
  dropped and counted, as CMSSW's L1 scouting unpacker drops them; BXs left without muons are not written, as
  CMSSW's OrbitNano writes only BXs with objects. ``lumi`` is the input's (L1Ntuple, EDM) or the ``lumi`` argument
  (scouting raw files have none); ``run`` overrides the input's.
"""

from __future__ import annotations

from collections.abc import Iterator

import awkward as ak
import numpy as np

from l1refit.errors import FormatError
from l1refit.formats import l1scouting, l1scouting_write
from l1refit.formats.output import atomic_path

READS = ("nanoaod", *l1scouting.FORMATS)  # read here into Parquet rows
WRITES = {  # what each of them converts to
    "nanoaod": ("parquet",),
    "l1scouting-edm": ("parquet", "l1scouting-nano"),
    "l1scouting-nano": ("parquet",),
}
Parts = Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]]  # (entries, muons, counts)
TO_NANO = ("l1ntuple", "scouting-run2", "scouting-run3", "l1scouting-edm")  # inputs of --to l1scouting-nano


def check(src, src_format: str, to: str) -> None:
    """A FormatError naming ``src`` when ``convert`` cannot turn ``src_format`` into ``to``."""
    if src_format in WRITES and to not in WRITES[src_format]:
        hint = " (a .root output is an L1Ntuple unless --to says otherwise)" if to == "l1ntuple" else ""
        raise FormatError(
            src, f"is a {src_format} file, which convert writes only to {', '.join(WRITES[src_format])}{hint}"
        )
    if to == "l1scouting-nano" and src_format not in TO_NANO:
        raise FormatError(src, f"is a {src_format} file; an L1 scouting NanoAOD is made from {', '.join(TO_NANO)}")


def muon_rows(path, fmt: str, step_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Per chunk of ``step_size`` entries: one row per L1 muon (the reader's columns, without its entry counts)."""
    if fmt == "nanoaod":
        from l1refit.formats import nanoaod  # the NanoAOD reader (formats/nanoaod.py)

        chunks = nanoaod.l1_rows(path, step_size)
    else:
        chunks = l1scouting.iterate(path, fmt, step_size if fmt == "l1scouting-nano" else max(step_size // 16, 1))
    for rows in chunks:
        rows.pop(l1scouting.ENTRY_COUNTS, None)
        yield rows


def to_nano(parts: Parts, dst) -> dict[str, int]:
    """Write (entries, muons, counts) parts as an L1 scouting NanoAOD (atomically), dropping what CMSSW drops."""
    n_dropped = 0
    with atomic_path(dst) as tmp, l1scouting_write.NanoWriter(tmp) as writer:
        for entries, muons, counts in parts:
            keep = (np.asarray(muons["hwPt"]) > 0) & (np.asarray(muons["hwQual"]) > 0)
            n_dropped += int((~keep).sum())
            owner = np.repeat(np.arange(len(counts)), counts)  # the entry of each muon
            counts = np.bincount(owner[keep], minlength=len(counts))
            full = counts > 0
            muons = {k: v[keep] for k, v in muons.items()}
            writer.extend({k: v[full] for k, v in entries.items()}, muons, counts[full])
        return {"entries": writer.n_entries, "muons": writer.n_muons, "dropped_pt0_or_qual0": n_dropped}


def record_parts(chunks: Iterator[ak.Array], *, run: int | None, lumi: int) -> Parts:
    """Entries and muons of BX records (scouting raw, or L1Ntuple events grouped by ``convert._bx_records``)."""
    for records in chunks:
        counts = ak.to_numpy(ak.num(records.muons)).astype(np.int64)
        muons = ak.flatten(records.muons)
        n = len(records)
        entries = {
            "run": ak.to_numpy(records.run) if run is None else np.full(n, run),
            "lumi": ak.to_numpy(records.lumi) if "lumi" in records.fields else np.full(n, lumi),
            "orbit": ak.to_numpy(records.orbit), "bx": ak.to_numpy(records.bx),
        }  # fmt: skip
        fields = {name: ak.to_numpy(muons[name]) for name in muons.fields}
        yield entries, fields | {"hwCharge": fields["charge"]}, counts  # charge is 0 where not valid, as hwCharge


def edm_parts(rows_chunks: Iterator[dict[str, np.ndarray]], *, run: int | None) -> Parts:
    """Entries (one per orbit and BX with muons) and muons of L1 scouting EDM rows; a chunk holds whole orbits."""
    for rows in rows_chunks:
        key = rows["orbit"].astype(np.int64) * 4096 + rows["bx"]
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
        entries = {k: rows[k][first] for k in ("run", "lumi", "orbit", "bx")}
        if run is not None:
            entries["run"] = np.full(len(first), run)
        yield entries, rows, np.diff(np.r_[first, len(key)])  # rows keep the stored hwCharge
