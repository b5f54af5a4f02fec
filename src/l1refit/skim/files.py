"""Skim files: stream one input file chunk by chunk into a Parquet skim and a cutflow CSV, and merge per-file skims.

Memory stays bounded whatever the file size; both outputs appear only once the whole input was read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import awkward as ak
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from l1refit.errors import ConfigError, FormatError
from l1refit.formats import l1ntuple, l1scouting, nanoaod, scouting
from l1refit.formats.output import PARQUET_OPTIONS, atomic_path
from l1refit.formats.registry import EVENT_FORMATS, L1_ONLY_FORMATS, L1SCOUTING_FORMATS, detect_format
from l1refit.skim.chunk import MAX_PART, candidate_schema, l1scouting_events, schema, scouting_events, skim_chunk
from l1refit.skim.cutflow import CUTFLOW, cutflow_frame, read_cutflow, step_descriptions, sum_cutflows
from l1refit.skim.propagate import Propagator, with_station2
from l1refit.skim.selection import Selection

log = logging.getLogger(__name__)

DEFAULT_STEP_SIZE = 200_000


def check_format(path: str | os.PathLike, fmt: str) -> None:
    """Fail early, naming the file, when it is missing or is not a ``fmt`` file."""
    if fmt not in EVENT_FORMATS:
        raise ConfigError(f"unknown input format {fmt!r}; allowed: {', '.join(EVENT_FORMATS)}")
    try:
        detected = detect_format(path)
    except FormatError as err:
        raise FormatError(path, f"is not a {fmt} file: neither a ROOT file nor a scouting raw stream") from err
    if detected != fmt:
        why = " (L1 muons only, no offline muons)" if detected in L1_ONLY_FORMATS else ""
        raise FormatError(path, f"is a {detected} file{why}, but the format {fmt!r} was expected")


def _event_chunks(
    path: str | os.PathLike, fmt: str, step_size: int, chunk_bytes: int, l1_tree: str | None, sel: Selection
) -> Iterator[ak.Array]:
    if fmt == "l1ntuple":
        yield from l1ntuple.iterate(path, step_size=step_size, l1_tree=l1_tree or l1ntuple.TREES["l1"])
    elif fmt == "nanoaod":
        prop = Propagator.from_config(sel.propagation)
        for events in nanoaod.iterate(path, step_size=step_size):
            yield with_station2(events, prop)
    elif fmt in L1SCOUTING_FORMATS:
        orbits = max(step_size // 16, 1)  # an orbit holds up to 3564 BXs of muons
        for rows in l1scouting.iterate(path, fmt, orbits if fmt == "l1scouting-edm" else step_size):
            yield l1scouting_events(rows)
    else:
        for records in scouting.iterate(path, fmt, chunk_bytes):
            yield scouting_events(records)


def _descriptions(path, fmt: str, sel: Selection) -> dict[str, str]:
    """The cutflow's step descriptions for this input: a NanoAOD says its barrel rule, table cut and propagation."""
    if fmt != "nanoaod":
        return step_descriptions(sel, fmt in L1_ONLY_FORMATS)
    info = nanoaod.describe(path, require_offline=True)
    return step_descriptions(sel, False, barrel_by_eta=not info.has_tf_index, input_note=info.note, propagated=True)


def skim_file(
    path: str | os.PathLike,
    fmt: str,
    selection: Selection | Mapping[str, Any] | None,
    out_parquet: str | os.PathLike,
    out_cutflow: str | os.PathLike,
    *,
    step_size: int = DEFAULT_STEP_SIZE,
    chunk_bytes: int = scouting.DEFAULT_CHUNK_BYTES,
    l1_tree: str | None = None,
    part: int = 0,
    out_candidates: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Skim one input file chunk by chunk into ``out_parquet`` and ``out_cutflow``; return the cutflow.

    The Parquet columns are those of :func:`~l1refit.skim.chunk.columns`: one row per matched pair for L1Ntuples,
    one per selected L1 muon for scouting files (no offline muons). ``out_candidates``, if given, gets every
    selected L1 muon with its neighbour features and fake label (:func:`~l1refit.skim.chunk.candidate_columns`).
    The outputs appear only if the whole file was read (written through :func:`atomic_path`); a missing file or one
    of another format is an error naming it. ``l1_tree`` picks the L1Ntuple's L1 tree (default: unpacked).
    """
    sel = selection if isinstance(selection, Selection) else Selection.from_config(selection)
    if not 0 <= part <= MAX_PART:
        raise ValueError(f"part must be a file index in 0..{MAX_PART}, got {part}")
    check_format(path, fmt)
    l1_only = fmt in L1_ONLY_FORMATS
    descriptions = _descriptions(path, fmt, sel)  # also: a NanoAOD without L1Mu or Muon fails here
    provenance = {"l1refit.format": fmt, "l1refit.selection": json.dumps(dataclasses.asdict(sel))}
    totals = dict.fromkeys((step for step, _ in CUTFLOW), 0)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        tmp_parquet, tmp_cutflow = (stack.enter_context(atomic_path(p)) for p in (out_parquet, out_cutflow))
        writer = stack.enter_context(pq.ParquetWriter(tmp_parquet, schema(l1_only, provenance), **PARQUET_OPTIONS))
        cand_writer = None
        if out_candidates is not None:
            tmp_candidates = stack.enter_context(atomic_path(out_candidates))
            cand_schema = candidate_schema(l1_only, provenance)
            cand_writer = stack.enter_context(pq.ParquetWriter(tmp_candidates, cand_schema, **PARQUET_OPTIONS))
        for k, events in enumerate(_event_chunks(path, fmt, step_size, chunk_bytes, l1_tree, sel)):
            table, *candidates, counts = skim_chunk(
                events, sel, l1_only=l1_only, part=part, first_entry=totals["events"], candidates=bool(cand_writer)
            )
            for step, n in counts.items():
                totals[step] += n
            rows = len(table["hwPt"])
            if rows:
                writer.write_table(pa.table(table, schema=writer.schema))
            if cand_writer is not None and len(candidates[0]["hwPt"]):
                cand_writer.write_table(pa.table(candidates[0], schema=cand_writer.schema))
            log.info(
                "%s: chunk %d: %d events, %d L1 muons, %d rows; total %d events in %.1f s",
                path, k, counts["events"], counts["l1_all"], rows, totals["events"], time.perf_counter() - start,
            )  # fmt: skip
        cutflow = cutflow_frame(totals, descriptions)
        cutflow.to_csv(tmp_cutflow, index=False)
    return cutflow


def merge_parquet(parts: Sequence[str | os.PathLike], out_parquet: str | os.PathLike) -> None:
    """Concatenate per-file Parquet tables row group by row group (never a whole file in memory), atomically.

    The parts must have the same columns, input format and selection (kept in the Parquet metadata).
    """
    if not parts:
        raise ValueError("need at least one part to merge")
    first = pq.read_schema(parts[0])
    with atomic_path(out_parquet) as tmp_parquet, pq.ParquetWriter(tmp_parquet, first, **PARQUET_OPTIONS) as writer:
        for part in parts:
            with contextlib.closing(pq.ParquetFile(part)) as file:
                if not file.schema_arrow.equals(first, check_metadata=True):
                    raise FormatError(part, f"its columns or its selection differ from those of {parts[0]}")
                for group in range(file.num_row_groups):
                    writer.write_table(file.read_row_group(group))


def merge_skims(
    parts: Sequence[str | os.PathLike],
    out_parquet: str | os.PathLike,
    cutflows: Sequence[str | os.PathLike],
    out_cutflow: str | os.PathLike,
) -> pd.DataFrame:
    """Concatenate per-file skims (:func:`merge_parquet`) and sum their cutflows."""
    if not parts or len(parts) != len(cutflows):
        raise ValueError(f"need one cutflow per part and at least one part, got {len(parts)} and {len(cutflows)}")
    with atomic_path(out_cutflow) as tmp_cutflow:
        merge_parquet(parts, out_parquet)
        cutflow = sum_cutflows([read_cutflow(path) for path in cutflows])
        cutflow.to_csv(tmp_cutflow, index=False)
    return cutflow
