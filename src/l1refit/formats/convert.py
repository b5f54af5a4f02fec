"""Convert between scouting raw files, L1Ntuples and Parquet (``l1refit convert``), streaming chunk by chunk.

The Run-3 formats (NanoAOD, L1 scouting EDM and NanoAOD in, L1 scouting NanoAOD out) are in :mod:`.convert_run3`.

Mappings (choices stated here because the formats do not fix them):

* scouting → L1Ntuple: one event per BX record; ``event = orbit · 3565 + bx`` (unique per BX), ``lumi = 0``,
  the event's ``bx``/``orbit`` leaves hold the record's, every muon gets ``muonBx = 0``. Muons with hwPt ≤ 1
  (0 GeV) are dropped, as ``L1Trigger/L1TNtuples`` stores only ``pt() > 0`` (docs/formats.md §4.2). No offline tree.
* L1Ntuple → scouting: one BX record per (event, muonBx) with at least one muon; ``orbit`` from the event's
  orbit leaf (else the entry number), ``bx`` = event bx + muonBx (else 3 + muonBx). Within a BX the muons keep
  their stored (rank) order and alternate slot 1, 2, 1, … as the uGMT output links carry ranks 2j, 2j+1.
  Run-3 files cannot hold muons with hwQual = 0 (readers drop them); they are dropped and counted.
* anything → Parquet: one row per L1 muon with the event identity (scouting: run, orbit, bx; L1Ntuple: run,
  lumi, event) beside the hardware integers and the stored physical floats.

Conversion to a scouting file builds the whole output in memory (the Run-3 container's header holds the total
event count and size); reading is always chunked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from l1refit.formats import convert_run3, l1ntuple, scouting
from l1refit.formats.output import atomic_path
from l1refit.formats.registry import CONVERT_TO, detect_format
from l1refit.logs import progress

log = logging.getLogger(__name__)

N_BX = 3565  # BX numbers 0..3564 as CMSSW indexes them
_L1MU_FROM_SCOUTING = (
    "hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual", "tfMuonIndex", "hwIso", "hwDXY",
    "hwPtUnconstrained",
)  # fmt: skip


def output_format(path: str | Path) -> str:
    """The output format a file name implies: .parquet, .root, .dat[.bz2] (Run-2 stream), .raw (Run-3)."""
    name = str(path)
    for suffixes, fmt in (
        ((".parquet", ".pq"), "parquet"),
        ((".root",), "l1ntuple"),
        ((".dat", ".dat.bz2"), "scouting-run2"),
        ((".raw",), "scouting-run3"),
    ):
        if name.endswith(suffixes):
            return fmt
    raise ValueError(f"cannot tell the output format from {name!r}: give --to one of {', '.join(CONVERT_TO)}")


def _read_chunks(path, fmt: str, *, chunk_bytes: int, step_size: int) -> Iterator[ak.Array]:
    if fmt == "l1ntuple":
        return l1ntuple.iterate(path, step_size=step_size, require_offline=False)
    return scouting.iterate(path, fmt, chunk_bytes)


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    to: str | None = None,
    src_format: str | None = None,
    run: int | None = None,
    lumi: int = 0,
    chunk_bytes: int = scouting.DEFAULT_CHUNK_BYTES,
    step_size: int = 200_000,
) -> dict[str, int]:
    """Convert ``src`` into ``dst`` (written atomically) and return counts of what was read, written, dropped."""
    src_format = src_format or detect_format(src)
    to = to or output_format(dst)
    if to not in CONVERT_TO:
        raise ValueError(f"unknown output format {to!r}; allowed: {', '.join(CONVERT_TO)}")
    if to == src_format:
        raise ValueError(f"{src} is already {to}; nothing to convert")
    convert_run3.check(src, src_format, to)
    desc = {"desc": f"convert {Path(src).name}", "unit": "chunks", "logger": log}
    if src_format in convert_run3.READS:
        rows = progress(convert_run3.muon_rows(src, src_format, step_size), **desc)
        if to == "parquet":
            return _to_parquet(rows, lambda chunk: chunk, dst)
        return convert_run3.to_nano(convert_run3.edm_parts(rows, run=run), dst)
    chunks = progress(_read_chunks(src, src_format, chunk_bytes=chunk_bytes, step_size=step_size), **desc)
    if to == "l1scouting-nano":
        records = _l1ntuple_records(chunks, run) if src_format == "l1ntuple" else chunks
        return convert_run3.to_nano(convert_run3.record_parts(records, run=run, lumi=lumi), dst)
    from_scouting = src_format != "l1ntuple"
    if to == "parquet":
        table = _scouting_rows if from_scouting else _l1ntuple_rows
        return _to_parquet(chunks, table, dst)
    if to == "l1ntuple":
        return _scouting_to_l1ntuple(chunks, dst)
    return _l1ntuple_to_scouting(chunks, dst, to, run=run, lumi=lumi)


def _to_parquet(chunks, table: Callable, dst) -> dict[str, int]:
    n_rows = 0
    with atomic_path(dst) as tmp:
        writer = None
        try:
            for chunk in chunks:
                rows = pa.table(table(chunk))
                writer = writer or pq.ParquetWriter(tmp, rows.schema, compression="zstd")
                writer.write_table(rows)
                n_rows += rows.num_rows
                log.debug("%d muons written", n_rows)
            if writer is None:
                raise ValueError("the input holds no records: nothing to write")
        finally:
            if writer is not None:
                writer.close()
    return {"muons": n_rows}


def _scouting_rows(records: ak.Array) -> dict[str, np.ndarray]:
    counts = ak.to_numpy(ak.num(records.muons))
    muons = ak.flatten(records.muons)
    rows = {name: np.repeat(ak.to_numpy(records[name]), counts) for name in ("run", "orbit", "bx")}
    return rows | {name: ak.to_numpy(muons[name]) for name in scouting.MUON_FIELDS}


def _l1ntuple_rows(events: ak.Array) -> dict[str, np.ndarray]:
    counts = ak.to_numpy(ak.num(events.L1Mu))
    muons = ak.flatten(events.L1Mu)
    rows = {name: np.repeat(ak.to_numpy(events[name]), counts) for name in ("run", "lumi", "event")}
    return rows | {name: ak.to_numpy(muons[name]) for name in muons.fields if name != "mass"}


def _scouting_to_l1ntuple(chunks, dst) -> dict[str, int]:
    n_events = n_written = n_dropped = 0
    with l1ntuple.Writer(dst) as writer:
        for records in chunks:
            muons = records.muons[records.muons.hwPt > 1]
            n_dropped += int(ak.sum(ak.num(records.muons)) - ak.sum(ak.num(muons)))
            l1 = ak.zip({name: muons[name] for name in _L1MU_FROM_SCOUTING} | {"bx": ak.zeros_like(muons.hwPt)})
            orbit = ak.to_numpy(records.orbit).astype(np.uint64)
            bx = ak.to_numpy(records.bx).astype(np.uint64)
            events = ak.zip(
                {
                    "run": records.run,
                    "lumi": np.zeros(len(records), np.uint32),
                    "event": orbit * N_BX + bx,
                    "bx": bx.astype(np.uint32),
                    "orbit": orbit,
                    "L1Mu": l1,
                },
                depth_limit=1,
            )
            writer.extend(events)
            n_events += len(events)
            n_written += int(ak.sum(ak.num(l1)))
            log.debug("%d BX records -> events, %d muons", n_events, n_written)
    return {"events": n_events, "muons": n_written, "dropped_zero_pt": n_dropped}


def _l1ntuple_records(chunks: Iterator[ak.Array], run: int | None) -> Iterator[ak.Array]:
    """The BX records of L1Ntuple event chunks, with the events' lumi (for an L1 scouting NanoAOD)."""
    n_events = 0
    for events in chunks:
        yield _bx_records(events, n_events, run, with_lumi=True)
        n_events += len(events)


def _bx_records(events: ak.Array, entry0: int, run: int | None, *, with_lumi: bool = False) -> ak.Array:
    """Group the L1 muons of L1Ntuple events into scouting BX records, one per (event, muonBx)."""
    counts = ak.to_numpy(ak.num(events.L1Mu))
    muons = ak.flatten(events.L1Mu)
    n_events = len(events)
    entry = np.repeat(np.arange(n_events), counts)
    mu_bx = ak.to_numpy(muons.bx).astype(np.int64)
    order = np.argsort(entry * 16 + (mu_bx + 8), kind="stable")
    key = (entry * 16 + (mu_bx + 8))[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, key.size])
    rank = np.arange(key.size) - np.repeat(starts, sizes)
    rec_entry, rec_bx = entry[order][starts], mu_bx[order][starts]
    ev_orbit = ak.to_numpy(events.orbit) if "orbit" in events.fields else entry0 + np.arange(n_events)
    ev_bx = ak.to_numpy(events.bx).astype(np.int64) if "bx" in events.fields else np.full(n_events, 3)
    ev_run = ak.to_numpy(events.run) if run is None else np.full(n_events, run)
    fields = {name: ak.to_numpy(muons[name])[order] for name in _L1MU_FROM_SCOUTING}
    fields["chargeValid"] = fields["charge"] != 0
    fields["slot"] = (1 + rank % 2).astype(np.int8)
    flat = ak.zip(fields)
    lumi = {"lumi": ak.to_numpy(events.lumi)[rec_entry].astype(np.uint32)} if with_lumi else {}
    return ak.zip(
        {
            "run": ev_run[rec_entry].astype(np.uint32),
            **lumi,
            "orbit": ev_orbit[rec_entry].astype(np.uint32),
            "bx": (ev_bx[rec_entry] + rec_bx).astype(np.uint32),
            "muons": ak.unflatten(flat, sizes),
        },
        depth_limit=1,
    )


def _l1ntuple_to_scouting(chunks, dst, to: str, *, run, lumi: int) -> dict[str, int]:
    parts, n_events = [], 0
    for events in chunks:
        parts.append(_bx_records(events, n_events, run))
        n_events += len(events)
        log.debug("%d events read", n_events)
    records = ak.concatenate(parts) if parts else ak.Array([])
    n_dropped = 0
    if to == "scouting-run3":
        keep = records.muons.hwQual > 0
        n_dropped = int(ak.sum(~keep))
        records = ak.with_field(records, records.muons[keep], "muons")
        records = records[ak.num(records.muons) > 0]
        run_number = int(records.run[0]) if run is None and len(records) else (run or 0)
        scouting.write_run3(dst, records, run=run_number, lumi=lumi)
    else:
        scouting.write_run2(dst, records)
    n_muons = int(ak.sum(ak.num(records.muons))) if len(records) else 0
    return {"events": n_events, "bx_records": len(records), "muons": n_muons, "dropped_qual0": n_dropped}
