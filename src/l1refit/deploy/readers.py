"""The refit's input readers, one per format: per chunk, one row per L1 muon as flat NumPy arrays.

Each reader says which identity columns its format gives, which columns a model input may name, and where the
physical L1 values come from (docs/deploy.md, "l1refit refit").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from l1refit import scales
from l1refit.errors import FormatError
from l1refit.formats import l1ntuple, l1scouting, scouting
from l1refit.formats.registry import REFIT_FORMATS, is_remote
from l1refit.formats.registry import detect_format as detect_event_format

PARQUET_MAGIC = b"PAR1"
PARQUET_IDENTITY = ("run", "lumi", "event", "orbit", "bx", "part", "entry", "l1_index")
PHYSICAL = ("l1_pt", "l1_eta", "l1_phi")
HARDWARE_FOR_PHYSICAL = ("hwPt", "hwEtaAtVtx", "hwPhiAtVtx")
_PARQUET_PHYSICAL = (  # source columns of l1_pt, l1_eta, l1_phi, by preference
    ("l1_pt", "l1_eta", "l1_phi"),  # skims
    ("pt", "etaAtVtx", "phiAtVtx"),  # `l1refit convert` of a scouting file
    ("pt", "eta", "phi"),  # `l1refit convert` of an L1Ntuple (at the vertex)
)
_SCOUTING_CHUNK_BYTES_PER_MUON = 12  # a Run-3 muon; a Run-2 muon is 8 bytes, plus its share of the record header
_SCOUTING_IDENTITY = {"run": pa.uint32(), "orbit": pa.uint32(), "bx": pa.uint32(), "l1_index": pa.uint8()}
_SCOUTING_MUON = (
    {name: pa.int16() for name in scouting.HW_FIELDS}
    | {"charge": pa.int8(), "chargeValid": pa.bool_(), "slot": pa.int8()}
    | {name: pa.float32() for name in scouting.FLOAT_FIELDS}
)  # the scouting layout's dtypes (formats/scouting)
_SCOUTING_PHYSICAL = ("pt", "etaAtVtx", "phiAtVtx")
_L1NTUPLE_PHYSICAL = ("pt", "eta", "phi")  # L1Mu floats: muonEt, muonEtaAtVtx, muonPhiAtVtx

Rows = dict[str, np.ndarray]
ENTRY_COUNTS = l1scouting.ENTRY_COUNTS


def detect_format(path: str | os.PathLike) -> str:
    """``parquet`` (by its magic), else :func:`l1refit.formats.registry.detect_format`; else a FormatError."""
    if not is_remote(str(path)):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        with open(path, "rb") as stream:
            if stream.read(4) == PARQUET_MAGIC:
                return "parquet"
    try:
        return detect_event_format(path)
    except FormatError as err:
        reason = str(err).removeprefix(str(path)).lstrip(": ")
        raise FormatError(
            path, f"unknown input format: neither Parquet, an L1Ntuple (ROOT) nor a scouting raw file ({reason})"
        ) from None


def check_format(path: str | os.PathLike, fmt: str | None) -> str:
    """The format of ``path``: detected, and with ``fmt`` given checked against it (a mismatch names both)."""
    if fmt is not None and fmt not in REFIT_FORMATS:
        raise ValueError(f"unknown input format {fmt!r}; allowed: {', '.join(REFIT_FORMATS)}")
    detected = detect_format(path)
    if fmt is not None and fmt != detected:
        raise FormatError(path, f"is a {detected} file, but the format {fmt!r} was expected")
    return detected


@dataclass(frozen=True)
class Source:
    """One input: the identity columns it gives, every column a model input may name, and a chunk reader.

    ``read(columns)`` yields per chunk the identity columns, the requested ``columns`` and ``l1_pt, l1_eta, l1_phi``
    as flat NumPy arrays, one entry per muon. With ``entry_counts`` (NanoAOD-like inputs) each chunk also has
    :data:`ENTRY_COUNTS`, the muon count of each of the chunk's input entries, zeros included, in order: what a
    friend tree needs to follow the input's entries (not a per-muon column).
    """

    identity: dict[str, pa.DataType]
    columns: dict[str, pa.DataType]
    read: Callable[[Sequence[str]], Iterator[Rows]]
    physical_from_hardware: bool = False
    entry_counts: bool = False


def open_source(path: str | os.PathLike, fmt: str, chunk_size: int, l1_tree: str) -> Source:
    """The reader of ``path`` in format ``fmt``: ``chunk_size`` Parquet rows, ROOT entries or ~scouting muons."""
    if fmt == "parquet":
        return _parquet_source(path, chunk_size)
    if fmt == "l1ntuple":
        return _l1ntuple_source(path, chunk_size, l1_tree)
    if fmt in l1scouting.FORMATS:
        return _l1scouting_source(path, fmt, chunk_size)
    if fmt == "nanoaod":
        return _nanoaod_source(path, chunk_size)
    return _scouting_source(path, fmt, chunk_size)


def _parquet_source(path: str | os.PathLike, chunk_size: int) -> Source:
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise FormatError(path, f"not a readable Parquet file ({err})") from None
    schema = file.schema_arrow
    types = {name: schema.field(name).type for name in schema.names}
    identity = {name: types[name] for name in PARQUET_IDENTITY if name in types}
    physical = next((cols for cols in _PARQUET_PHYSICAL if all(c in types for c in cols)), None)

    def read(columns: Sequence[str]) -> Iterator[Rows]:
        wanted = list(dict.fromkeys([*identity, *columns, *(physical or HARDWARE_FOR_PHYSICAL)]))
        batches = file.iter_batches(batch_size=chunk_size, columns=wanted, use_threads=False)
        try:
            for batch in batches:
                rows = {}
                for name in wanted:
                    column = batch.column(name)
                    if column.null_count:
                        raise FormatError(path, f"column {name!r} has {column.null_count} null value(s)")
                    rows[name] = column.to_numpy(zero_copy_only=False)
                yield rows | _physical(rows, physical)
        except pa.ArrowException as err:
            raise FormatError(path, f"cannot read the Parquet file ({err})") from None
        finally:
            file.close()

    return Source(identity, types, read, physical_from_hardware=physical is None)


def _physical(rows: Rows, source: Sequence[str] | None) -> Rows:
    """``l1_pt, l1_eta, l1_phi`` from the named columns, or from the hardware integers (CMSSW scales)."""
    if source is not None:
        return {name: rows[column] for name, column in zip(PHYSICAL, source, strict=True)}
    return {
        "l1_pt": scales.hw_to_pt(rows["hwPt"]),
        "l1_eta": scales.hw_to_eta(rows["hwEtaAtVtx"]),
        "l1_phi": scales.hw_to_phi(rows["hwPhiAtVtx"]),
    }


def _flat_rows(records: ak.Array, collection: str, event_fields: Sequence[str], muon_fields: dict[str, str]) -> Rows:
    """One row per muon of ``records[collection]``: event fields repeated, ``l1_index``, the named muon fields."""
    counts = ak.to_numpy(ak.num(records[collection], axis=1))
    flat = ak.flatten(records[collection], axis=1)
    rows = {name: np.repeat(ak.to_numpy(records[name]), counts) for name in event_fields}
    starts = np.cumsum(counts) - counts
    rows["l1_index"] = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    return rows | {name: ak.to_numpy(flat[field]) for name, field in muon_fields.items()}


def _l1ntuple_source(path: str | os.PathLike, chunk_size: int, l1_tree: str) -> Source:
    empty = l1ntuple.read(path, entry_stop=0, l1_tree=l1_tree, require_offline=False)
    muons = ak.flatten(empty["L1Mu"], axis=1)
    types = {name: pa.from_numpy_dtype(ak.to_numpy(muons[name]).dtype) for name in muons.fields if name != "mass"}
    event = [name for name in ("run", "lumi", "event", "bx", "orbit") if name in empty.fields]
    identity = {name: pa.from_numpy_dtype(ak.to_numpy(empty[name]).dtype) for name in event}
    identity |= {"l1_index": pa.uint8(), "muon_bx": types["bx"]}
    columns = {name: dtype for name, dtype in types.items() if name != "bx"}

    def read(wanted: Sequence[str]) -> Iterator[Rows]:
        fields = {name: name for name in wanted} | {"muon_bx": "bx"}
        fields |= dict(zip(PHYSICAL, _L1NTUPLE_PHYSICAL, strict=True))
        chunks = l1ntuple.iterate(path, step_size=chunk_size, l1_tree=l1_tree, require_offline=False)
        for events in chunks:
            yield _flat_rows(events, "L1Mu", event, fields)

    return Source(identity, columns, read)


def _scouting_source(path: str | os.PathLike, fmt: str, chunk_size: int) -> Source:
    chunk_bytes = max(_SCOUTING_CHUNK_BYTES_PER_MUON * chunk_size, 1 << 12)

    def read(wanted: Sequence[str]) -> Iterator[Rows]:
        fields = {name: name for name in wanted} | dict(zip(PHYSICAL, _SCOUTING_PHYSICAL, strict=True))
        for records in scouting.iterate(path, fmt, chunk_bytes):
            yield _flat_rows(records, "muons", ("run", "orbit", "bx"), fields)

    return Source(_SCOUTING_IDENTITY, _SCOUTING_MUON, read)


_L1SCOUTING_IDENTITY = {name: pa.from_numpy_dtype(dtype) for name, dtype in l1scouting.IDENTITY.items()}
_L1SCOUTING_MUON = {name: _SCOUTING_MUON.get(name, pa.int16()) for name in l1scouting.COLUMNS}


def _l1scouting_source(path: str | os.PathLike, fmt: str, chunk_size: int) -> Source:
    """CMSSW L1 scouting EDM (``chunk_size`` // 16 orbits a chunk) or L1 scouting NanoAOD (``chunk_size`` BXs)."""
    step = max(chunk_size // 16, 1) if fmt == "l1scouting-edm" else chunk_size
    if fmt == "l1scouting-edm":  # a file without muons or unsplit is an error before the output is opened
        import uproot

        with uproot.open(path) as file:
            l1scouting.muon_branch(path, file["Events"])

    def read(wanted: Sequence[str]) -> Iterator[Rows]:
        for rows in l1scouting.iterate(path, fmt, step, columns=[*wanted, *_SCOUTING_PHYSICAL]):
            out = {name: rows[name] for name in (*_L1SCOUTING_IDENTITY, *wanted)}
            out |= {name: rows[column] for name, column in zip(PHYSICAL, _SCOUTING_PHYSICAL, strict=True)}
            yield out | ({ENTRY_COUNTS: rows[ENTRY_COUNTS]} if ENTRY_COUNTS in rows else {})

    nano = fmt == "l1scouting-nano"
    columns = {k: v for k, v in _L1SCOUTING_MUON.items() if not (nano and k == "hwIso")}  # not in the NanoAOD
    return Source(_L1SCOUTING_IDENTITY, columns, read, entry_counts=nano)


_NANOAOD_IDENTITY = {"run": pa.uint32(), "lumi": pa.uint32(), "event": pa.uint64(), "entry": pa.uint64(),
                     "l1_index": pa.uint8(), "muon_bx": pa.int16()}  # fmt: skip
_NANOAOD_PHYSICAL = ("pt", "etaAtVtx", "phiAtVtx")  # rebuilt from the integers, CMSSW convention (formats/nanoaod)


def _nanoaod_source(path: str | os.PathLike, chunk_size: int) -> Source:
    """A NanoAOD's L1 muons (``chunk_size`` events a chunk); ``entry`` is the event's index in the tree."""
    from l1refit.formats import nanoaod  # imported here: it loads coffea

    info = nanoaod.describe(path)  # no L1Mu, or a branch missing: an error before the output is opened
    columns = {name: pa.int16() for name, _ in nanoaod.layout.L1_FLOATS.values()}
    columns |= {"charge": pa.int8(), "hwQual": pa.int16(), "hwDXY": pa.int16()}
    columns |= {"tfMuonIndex": pa.int16()} if info.has_tf_index else {}
    columns |= {name: pa.float32() for name in ("pt", "eta", "phi", "etaAtVtx", "phiAtVtx")}

    def read(wanted: Sequence[str]) -> Iterator[Rows]:
        needed = [*wanted, "bx", *_NANOAOD_PHYSICAL]  # only these branches are read and converted
        for rows in nanoaod.l1_rows(path, chunk_size, columns=needed):
            out = {name: rows[name] for name in _NANOAOD_IDENTITY if name != "muon_bx"} | {"muon_bx": rows["bx"]}
            out |= {name: rows[name] for name in wanted}
            out |= {name: rows[column] for name, column in zip(PHYSICAL, _NANOAOD_PHYSICAL, strict=True)}
            yield out | {ENTRY_COUNTS: rows[ENTRY_COUNTS]}

    return Source(_NANOAOD_IDENTITY, columns, read, entry_counts=True)
