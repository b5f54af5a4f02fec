"""Apply an exported ONNX model to L1 muons (``l1refit refit``): one Parquet row per muon, corrected φ, η, pT beside.

Inputs, detected from their content (or named with ``fmt``):

``parquet``
    A skim (``results/skims/*.parquet``) or any table with one row per L1 muon, e.g. ``l1refit convert``'s. The
    original physical L1 values are ``l1_pt, l1_eta, l1_phi`` (skims); else ``pt, etaAtVtx, phiAtVtx`` (converted
    scouting files); else ``pt, eta, phi`` (converted L1Ntuples, whose η, φ are at the vertex); else they are
    computed from ``hwPt, hwEtaAtVtx, hwPhiAtVtx`` with the CMSSW scales. Identity columns present among
    :data:`PARQUET_IDENTITY` are copied.
``l1ntuple``
    An L1Ntuple (ROOT), every L1 muon of every event and BX (``l1_tree`` picks the unpacked or emulated muons).
    Identity: ``run, lumi, event`` (and the event's ``bx, orbit`` where the file has them), ``l1_index`` (the muon's
    position in its event) and ``muon_bx`` (its BX relative to the event's). Physical values: the stored floats at
    the vertex (``muonEt, muonEtaAtVtx, muonPhiAtVtx``).
``scouting-run2`` / ``scouting-run3``
    A scouting raw file, every muon the CMSSW unpackers keep. Identity: ``run, orbit, bx, l1_index`` (position in
    the BX record). Physical values: the scouting-convention floats ``pt, etaAtVtx, phiAtVtx``.

The output columns are the identity columns, the model's input columns (then ``hwQual, tfMuonIndex`` where the
input has them), ``l1_pt, l1_eta, l1_phi`` and ``refit_pt, refit_eta, refit_phi`` (float32; φ in (−π, π], pT in
GeV), in input order. The graph computes its L1 values from the hardware integers with the CMSSW scales, so
``refit_*`` do not depend on which floats the file stores. The Parquet key-value metadata name the model, its id and
training-configuration hash, and the input file.

Reading is chunked (``chunk_size`` Parquet rows, L1Ntuple events, or about as many scouting muons at a time) and the
model runs on :data:`ORT_BATCH` rows at a time, so memory stays bounded whatever the input size. The output is
written through :func:`l1refit.io.atomic_path`: it appears under its name only when the whole input was refitted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from . import scales
from .datasets import is_remote
from .errors import FormatError, L1RefitError
from .formats import l1ntuple, scouting
from .inspect import detect_format as detect_event_format
from .io import atomic_path

FORMATS = ("parquet", "l1ntuple", *scouting.FORMATS)
DEFAULT_CHUNK_SIZE = 1_000_000
ORT_BATCH = 65_536  # rows per onnxruntime call: the graph's intermediates stay small and in cache
PARQUET_MAGIC = b"PAR1"
PARQUET = {"compression": "snappy", "use_dictionary": False}  # as the skims: the fastest to write
PARQUET_IDENTITY = ("run", "lumi", "event", "orbit", "bx", "part", "entry", "l1_index")
PHYSICAL = ("l1_pt", "l1_eta", "l1_phi")
REFIT = ("refit_pt", "refit_eta", "refit_phi")
EXTRA_HARDWARE = ("hwQual", "tfMuonIndex")  # copied beside the model's inputs where the input has them
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
)  # the scouting layout's dtypes (formats/scouting.py)
_SCOUTING_PHYSICAL = ("pt", "etaAtVtx", "phiAtVtx")
_L1NTUPLE_PHYSICAL = ("pt", "eta", "phi")  # L1Mu floats: muonEt, muonEtaAtVtx, muonPhiAtVtx


class RefitError(L1RefitError, ValueError):
    """A model or an input that cannot be refitted: not an l1refit ONNX export, or missing model inputs."""


# ---------------------------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class Model:
    """An exported graph in an onnxruntime session: ``model(x)`` maps (N, len(inputs)) float32 to (N, 3) φ, η, pT."""

    path: Path
    inputs: tuple[str, ...]
    metadata: dict[str, str]
    session: ort.InferenceSession
    input_name: str
    output_name: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), 3), np.float32)
        for start in range(0, len(x), ORT_BATCH):
            stop = start + ORT_BATCH
            out[start:stop] = self.session.run([self.output_name], {self.input_name: x[start:stop]})[0]
        return out


def load_model(path: str | os.PathLike, *, threads: int = 1) -> Model:
    """Open an exported model (:mod:`l1refit.export`) on the CPU with ``threads`` intra-op threads.

    A file that is not ONNX, or an ONNX graph without the export's metadata and signature, is a
    :class:`RefitError` naming the file.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: the exception below says what went wrong
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises InvalidProtobuf, Fail, InvalidGraph, ... (no common base)
        lines = str(err).replace(f"Load model from {path} failed:", "").strip().splitlines()
        raise RefitError(f"{path}: not an ONNX model onnxruntime can load ({type(err).__name__}: {lines[0]})") from None
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    try:
        inputs = tuple(json.loads(metadata["inputs"]))
    except (KeyError, TypeError, ValueError):
        raise RefitError(
            f"{path}: not an l1refit export: its metadata have no 'inputs' list of input columns "
            f"(keys: {', '.join(sorted(metadata)) or 'none'})"
        ) from None
    if not inputs or not all(isinstance(name, str) for name in inputs):
        raise RefitError(f"{path}: metadata 'inputs' must be a non-empty list of column names, got {inputs!r}")
    graph_in = {arg.name: arg for arg in session.get_inputs()}
    graph_out = {arg.name: arg for arg in session.get_outputs()}
    input_name, output_name = metadata.get("input_name", "hw"), metadata.get("output_name", "corrected")
    if input_name not in graph_in or output_name not in graph_out:
        raise RefitError(
            f"{path}: the graph has inputs {sorted(graph_in)} and outputs {sorted(graph_out)}; an l1refit export "
            f"has input {input_name!r} and output {output_name!r}"
        )
    width = graph_in[input_name].shape[-1] if graph_in[input_name].shape else None
    if isinstance(width, int) and width != len(inputs):
        raise RefitError(f"{path}: the graph takes {width} input columns, its metadata list {len(inputs)}: {inputs}")
    return Model(path, inputs, metadata, session, input_name, output_name)


# ---------------------------------------------------------------------------------------------------------------
# input formats


def detect_format(path: str | os.PathLike) -> str:
    """``parquet`` (by its magic), else :func:`l1refit.inspect.detect_format`; anything else is a FormatError."""
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
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r}; allowed: {', '.join(FORMATS)}")
    detected = detect_format(path)
    if fmt is not None and fmt != detected:
        raise FormatError(path, f"is a {detected} file, but the format {fmt!r} was expected")
    return detected


Rows = dict[str, np.ndarray]


@dataclass(frozen=True)
class _Source:
    """One input: the identity columns it gives, every column a model input may name, and a chunk reader.

    ``read(columns)`` yields per chunk the identity columns, the requested ``columns`` and ``l1_pt, l1_eta, l1_phi``
    as flat NumPy arrays, one entry per muon.
    """

    identity: dict[str, pa.DataType]
    columns: dict[str, pa.DataType]
    read: Callable[[Sequence[str]], Iterator[Rows]]
    physical_from_hardware: bool = False


def _parquet_source(path: str | os.PathLike, chunk_size: int) -> _Source:
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

    return _Source(identity, types, read, physical_from_hardware=physical is None)


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


def _l1ntuple_source(path: str | os.PathLike, chunk_size: int, l1_tree: str) -> _Source:
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

    return _Source(identity, columns, read)


def _scouting_source(path: str | os.PathLike, fmt: str, chunk_size: int) -> _Source:
    chunk_bytes = max(_SCOUTING_CHUNK_BYTES_PER_MUON * chunk_size, 1 << 12)

    def read(wanted: Sequence[str]) -> Iterator[Rows]:
        fields = {name: name for name in wanted} | dict(zip(PHYSICAL, _SCOUTING_PHYSICAL, strict=True))
        for records in scouting.iterate(path, fmt, chunk_bytes):
            yield _flat_rows(records, "muons", ("run", "orbit", "bx"), fields)

    return _Source(_SCOUTING_IDENTITY, _SCOUTING_MUON, read)


def _source(path: str | os.PathLike, fmt: str, chunk_size: int, l1_tree: str) -> _Source:
    if fmt == "parquet":
        return _parquet_source(path, chunk_size)
    if fmt == "l1ntuple":
        return _l1ntuple_source(path, chunk_size, l1_tree)
    return _scouting_source(path, fmt, chunk_size)


# ---------------------------------------------------------------------------------------------------------------
# refit


def _hardware(source: _Source, model: Model) -> list[str]:
    """The hardware columns of the output: the model's inputs, then :data:`EXTRA_HARDWARE` where available."""
    names = dict.fromkeys(name for name in (*model.inputs, *EXTRA_HARDWARE) if name in source.columns)
    return [name for name in names if name not in source.identity and name not in (*PHYSICAL, *REFIT)]


def output_schema(source: _Source, model: Model, input_path: str | os.PathLike, fmt: str) -> pa.Schema:
    """Identity, hardware (model inputs, then :data:`EXTRA_HARDWARE`), ``l1_*`` and ``refit_*`` columns."""
    hardware = _hardware(source, model)
    fields = [(name, dtype) for name, dtype in source.identity.items()]
    fields += [(name, source.columns[name]) for name in hardware]
    fields += [(name, pa.float32()) for name in (*PHYSICAL, *REFIT)]
    metadata = {
        "l1refit.refit.model": str(model.path),
        "l1refit.refit.model_id": model.metadata.get("model_id", ""),
        "l1refit.refit.training_config_sha256": model.metadata.get("training_config_sha256", ""),
        "l1refit.refit.inputs": json.dumps(list(model.inputs)),
        "l1refit.refit.input": str(input_path),
        "l1refit.refit.input_format": fmt,
        "l1refit.refit.l1_from_hardware": json.dumps(source.physical_from_hardware),
    }
    return pa.schema(fields, metadata)


def _table(rows: Rows, schema: pa.Schema) -> pa.Table:
    arrays = [
        pa.array(np.ascontiguousarray(rows[field.name], dtype=field.type.to_pandas_dtype()), type=field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def refit_file(
    model_path: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    fmt: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int = 1,
    l1_tree: str = l1ntuple.TREES["l1"],
    progress: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Refit every L1 muon of ``input_path`` with the exported model and write one Parquet row per muon.

    See the module docstring for the formats and columns. ``fmt`` (one of :data:`FORMATS`) is detected when not
    given; ``chunk_size`` is the number of Parquet rows, L1Ntuple events or (about) scouting muons read at a time;
    ``threads`` the onnxruntime intra-op threads. ``progress`` gets one line per chunk. Returns ``muons`` (rows
    written), ``chunks``, ``seconds`` (wall time of the reading, inference and writing) and ``format``.

    Errors name the file: a model that is not an l1refit ONNX export, an input of unknown format, a model input
    column the input lacks (with the model and the input named). ``output_path`` is written atomically.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size}")
    if Path(output_path).resolve() in {Path(model_path).resolve(), Path(input_path).resolve()}:
        raise RefitError(f"{output_path}: the output would overwrite the model or the input")
    model = load_model(model_path, threads=threads)
    fmt = check_format(input_path, fmt)
    source = _source(input_path, fmt, chunk_size, l1_tree)
    missing = [name for name in model.inputs if name not in source.columns]
    if missing:
        raise RefitError(
            f"{input_path} ({fmt}) lacks the column(s) {', '.join(missing)} that the model {model.path} needs "
            f"(model inputs: {', '.join(model.inputs)}; the input has: {', '.join(source.columns)})"
        )
    needed = list(model.inputs)
    if source.physical_from_hardware:
        missing = [name for name in HARDWARE_FOR_PHYSICAL if name not in source.columns]
        if missing:
            raise RefitError(
                f"{input_path} ({fmt}) has no L1 pT, eta, phi columns ({', '.join(PHYSICAL)}) and lacks the "
                f"column(s) {', '.join(missing)} to compute them from"
            )
        needed += HARDWARE_FOR_PHYSICAL
    schema = output_schema(source, model, input_path, fmt)
    hardware = _hardware(source, model)
    n_muons = n_chunks = 0
    start = time.perf_counter()
    with atomic_path(output_path) as tmp, pq.ParquetWriter(tmp, schema, **PARQUET) as writer:
        for rows in source.read(list(dict.fromkeys([*needed, *hardware]))):
            n = len(rows["l1_pt"])
            x = np.empty((n, len(model.inputs)), np.float32)
            for j, name in enumerate(model.inputs):
                x[:, j] = rows[name]
            corrected = model(x)
            rows |= {"refit_phi": corrected[:, 0], "refit_eta": corrected[:, 1], "refit_pt": corrected[:, 2]}
            if n:
                writer.write_table(_table(rows, schema))
            n_muons += n
            n_chunks += 1
            seconds = time.perf_counter() - start
            progress(
                f"{input_path}: chunk {n_chunks}: {n} muons; total {n_muons} muons in {seconds:.1f} s "
                f"({n_muons / max(seconds, 1e-9) / 1e6:.2f} M muons/s)"
            )
    return {"muons": n_muons, "chunks": n_chunks, "seconds": time.perf_counter() - start, "format": fmt}
