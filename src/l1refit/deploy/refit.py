"""``l1refit refit``: apply an exported ONNX model, or the emulated FPGA firmware (:mod:`l1refit.deploy.fpga.refit`),
to every L1 muon of a file, one Parquet row per muon.

Inputs (a skim or converted Parquet table, an L1Ntuple, a scouting raw file, NanoAOD, L1 scouting EDM or NanoAOD) are
read chunk by chunk (:mod:`l1refit.deploy.readers`) and written as they go, atomically, so memory stays bounded
whatever the input size. The output keeps the identity and hardware columns and adds ``l1_*`` and ``refit_*``; a
``.root`` output of a NanoAOD-like input is a friend tree instead (:mod:`l1refit.deploy.friend`, docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from l1refit.deploy import friend
from l1refit.deploy.engine import InputError, Model, RefitError, load_model
from l1refit.deploy.fakeid import FAKE_PROB, FakeId, event_groups, load_fakeid
from l1refit.deploy.pipeline import WriteBehind, read_ahead
from l1refit.deploy.readers import (
    ENTRY_COUNTS,
    HARDWARE_FOR_PHYSICAL,
    PARQUET_IDENTITY,
    PHYSICAL,
    Rows,
    Source,
    check_format,
    open_source,
)
from l1refit.deploy.runtime import check_threads
from l1refit.formats import l1ntuple
from l1refit.formats.output import PARQUET_OPTIONS, atomic_path
from l1refit.logs import progress
from l1refit.skim import neighbours

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 250_000  # 1.3x the muons/s of 1 M a chunk on one core, and less memory (bench_refit*.py)
REFIT = ("refit_pt", "refit_eta", "refit_phi")
COMPRESSIONS = ("snappy", "none", "lz4", "zstd", "gzip", "brotli")  # Parquet codecs of the output
DEFAULT_COMPRESSION = "snappy"  # half the size of "none" for 2/3 of its writing speed (bench_refit.py)
EXTRA_HARDWARE = ("hwQual", "tfMuonIndex")  # copied beside the model's inputs where the input has them


# ---------------------------------------------------------------------------------------------------------------
# refit


def _hardware(source: Source, model: Model) -> list[str]:
    """The hardware columns of the output: the model's inputs, then :data:`EXTRA_HARDWARE` where available."""
    names = dict.fromkeys(name for name in (*model.inputs, *EXTRA_HARDWARE) if name in source.columns)
    return [name for name in names if name not in source.identity and name not in (*PHYSICAL, *REFIT)]


def _fakeid_columns(fake: FakeId, source: Source, input_path, fmt: str) -> list[str]:
    """The columns the fake classifier reads; an input without them is an error naming what is missing."""
    required = [name for name in fake.columns if name != "tfMuonIndex"]  # without it: the barrel by |eta| < 0.83
    why = ""
    if fmt == "parquet":
        required += neighbours.COLUMNS
        why = " (a Parquet input must be a candidate table of the skim: results/skims/<dataset>.candidates.parquet)"
    missing = [name for name in required if name not in source.columns]
    if missing:
        raise RefitError(f"{input_path} ({fmt}) lacks the column(s) {', '.join(missing)} that the fake classifier "
                         f"{fake.path} needs{why}")  # fmt: skip
    return required + (["tfMuonIndex"] if "tfMuonIndex" in source.columns else [])


def output_schema(
    source: Source, model: Model, input_path: str | os.PathLike, fmt: str, fake: FakeId | None = None
) -> pa.Schema:
    """Identity, hardware (model inputs, then :data:`EXTRA_HARDWARE`), ``l1_*``, ``refit_*`` and, with a fake
    classifier, ``fake_prob`` columns."""
    hardware = _hardware(source, model)
    fields = [(name, dtype) for name, dtype in source.identity.items()]
    fields += [(name, source.columns[name]) for name in hardware]
    fields += [(name, pa.float32()) for name in (*PHYSICAL, *REFIT, *([FAKE_PROB] if fake else []))]
    metadata = {
        "l1refit.refit.model": str(model.path),
        "l1refit.refit.model_id": model.metadata.get("model_id", ""),
        "l1refit.refit.training_config_sha256": model.metadata.get("training_config_sha256", ""),
        "l1refit.refit.inputs": json.dumps(list(model.inputs)),
        "l1refit.refit.input": str(input_path),
        "l1refit.refit.input_format": fmt,
        "l1refit.refit.l1_from_hardware": json.dumps(source.physical_from_hardware),
    }
    if fake is not None:
        metadata["l1refit.refit.fakeid"] = str(fake.path)
        metadata["l1refit.refit.fakeid_engine"] = fake.engine
    return pa.schema(fields, metadata | model.refit_metadata)


# NumPy dtype of the fixed-width Arrow types of the output, wrapped without a copy by _arrow
_NUMPY = {pa.from_numpy_dtype(np.dtype(t)): np.dtype(t) for t in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4",
                                                                  "f8")}  # fmt: skip


def _arrow(values: np.ndarray, dtype: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of ``dtype``: NumPy's cast, then a zero-copy wrap for fixed-width numbers
    (``pa.array`` would import pandas on its first call, 0.3 s of a refit)."""
    if dtype not in _NUMPY:
        return pa.array(np.ascontiguousarray(values, dtype=dtype.to_pandas_dtype()), type=dtype)
    data = np.ascontiguousarray(values, dtype=_NUMPY[dtype])
    return pa.Array.from_buffers(dtype, len(data), [None, pa.py_buffer(data)])


def _table(rows: Rows, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([_arrow(rows[field.name], field.type) for field in schema], schema=schema)


def _open_model(model_path: str | os.PathLike | None, firmware: str | os.PathLike | None, threads: int,
                optimise: bool, kernel: bool = False):  # fmt: skip
    """The ONNX :class:`Model`, or the firmware design as one (exactly one of the two paths)."""
    if (model_path is None) == (firmware is None):
        raise ValueError("give exactly one of an ONNX model and a firmware design")
    if firmware is None:
        return load_model(model_path, threads=threads, optimise=optimise, kernel=kernel)
    if kernel:
        raise ValueError("the compiled kernel runs an ONNX model, not a firmware design")
    check_threads(threads)
    from l1refit.deploy.fpga.refit import load_firmware  # imports this module: not at the top

    return load_firmware(firmware, threads=threads)


def refit_file(
    model_path: str | os.PathLike | None,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    firmware: str | os.PathLike | None = None,
    fmt: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int = 1,
    l1_tree: str = l1ntuple.TREES["l1"],
    friend_tree: str = friend.DEFAULT_TREE,
    compression: str = DEFAULT_COMPRESSION,
    optimise: bool = True,
    kernel: bool = False,
    fakeid: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Refit every L1 muon of ``input_path`` with the exported model and write one Parquet row per muon.

    With ``fakeid`` (an exported fake classifier, :mod:`l1refit.deploy.fakeid`) the output also has ``fake_prob``:
    the probability that the muon is fake, for the muons that pass the skim's L1 selection (NaN for the others). A
    Parquet input must then be a candidate table of the skim (it carries the neighbour features).

    With ``firmware`` (a design JSON, :mod:`l1refit.deploy.fpga.design`) instead of ``model_path`` (then None) the
    refit values are the emulated firmware's, bit for bit what the board computes; same inputs and outputs.

    Formats and columns: docs/deploy.md. ``fmt`` (one of :data:`l1refit.formats.registry.REFIT_FORMATS`) is
    detected when not given; ``chunk_size`` is the number of Parquet rows, L1Ntuple or NanoAOD entries or (about)
    scouting muons read at a time; ``threads`` the onnxruntime intra-op threads (the emulator's BLAS threads). An
    ``output_path`` ending in ``.root`` is a friend tree named ``friend_tree`` aligned with the input's entries
    (NanoAOD-like inputs only, :mod:`l1refit.deploy.friend`). Each chunk is logged (and a progress bar drawn on a
    terminal). The ONNX model runs as its optimised graph unless ``optimise`` is False, with the compiled kernel
    when ``kernel`` (:func:`l1refit.deploy.engine.load_model`).
    Reading, inference and writing overlap (:mod:`l1refit.deploy.pipeline`). ``compression`` is the
    Parquet output's codec (``none``, ``snappy``, ``lz4``, ``zstd``, ``gzip``, ``brotli``). Returns ``muons``
    (muons refitted), ``chunks``, ``seconds`` (wall time of the reading, inference and writing), ``format``,
    ``graph`` (``optimised``, ``exported`` or ``firmware``), ``engine`` (``onnx``, ``kernel`` or ``firmware``)
    and, for a friend tree, ``entries``.

    Errors name the file: a model that is not an l1refit ONNX export or a firmware design, an input of unknown
    format, a model input column the input lacks (with the model and the input named), a ``.root`` output of an input
    without NanoAOD entries, input values outside the firmware's uGMT types. ``output_path`` is written atomically.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    used = [Path(path).resolve() for path in (model_path, firmware, fakeid, input_path) if path is not None]
    if Path(output_path).resolve() in used:
        raise RefitError(f"{output_path}: the output would overwrite the model or the input")
    kind = friend.output_kind(output_path)
    model = _open_model(model_path, firmware, threads, optimise, kernel)
    fmt = check_format(input_path, fmt)
    if kind == "friend":
        friend.check_input(output_path, input_path, fmt, friend_tree)
    source = open_source(input_path, fmt, chunk_size, l1_tree)
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
    fake = None if fakeid is None else load_fakeid(fakeid, threads)
    if fake is not None:
        needed += _fakeid_columns(fake, source, input_path, fmt)
    schema = output_schema(source, model, input_path, fmt, fake)
    hardware = _hardware(source, model)
    n_muons = n_chunks = 0
    start = time.perf_counter()
    reader = read_ahead(source.read(list(dict.fromkeys([*needed, *hardware]))))
    chunks = progress(reader, desc="refit", unit="chunk", logger=log)
    with (
        contextlib.closing(reader),  # an error stops the reader thread here, not when the traceback is freed
        atomic_path(output_path) as tmp,
        _writer(kind, tmp, schema, friend_tree, input_path, compression) as write,
        WriteBehind(write) as behind,
    ):
        for rows in chunks:
            n = len(rows["l1_pt"])
            x = np.empty((n, len(model.inputs)), model.dtype)
            for j, name in enumerate(model.inputs):
                x[:, j] = rows[name]
            try:
                corrected = model(x)
            except InputError as err:
                raise RefitError(f"{input_path} ({fmt}): chunk {n_chunks + 1}: {err}") from None
            rows |= {"refit_phi": corrected[:, 0], "refit_eta": corrected[:, 1], "refit_pt": corrected[:, 2]}
            if fake is not None:
                rows[FAKE_PROB] = fake(rows, event_groups(rows, source.identity))
            behind.submit(rows)
            n_muons += n
            n_chunks += 1
            seconds = time.perf_counter() - start
            log.info(
                f"{input_path}: chunk {n_chunks}: {n} muons; total {n_muons} muons in {seconds:.1f} s "
                f"({n_muons / max(seconds, 1e-9) / 1e6:.2f} M muons/s)"
            )
    counts = {"muons": n_muons, "chunks": n_chunks, "seconds": time.perf_counter() - start, "format": fmt,
              "graph": model.graph, "engine": model.refit_metadata["l1refit.refit.engine"]}  # fmt: skip
    return counts | ({"entries": behind.total} if kind == "friend" else {})


@contextlib.contextmanager
def _writer(kind: str, path: Path, schema: pa.Schema, tree: str, source,
            compression: str) -> Iterator[Callable[[Rows], int]]:  # fmt: skip
    """``write(rows)`` of the output: Parquet rows, or the friend tree's entries (returns the entries written).

    Parquet: ``compression`` per column, no dictionaries (the float columns would not gain), min/max statistics
    only for the identity columns (what a reader filters on; for every column they cost 10 % of the writing).
    """
    if kind == "friend":
        metadata = {key.decode(): value.decode() for key, value in schema.metadata.items()}
        with friend.FriendWriter(path, tree, metadata, source) as writer:
            yield lambda rows: _friend_write(writer, rows)
        return
    identity = [name for name in schema.names if name in PARQUET_IDENTITY]
    options = dict(PARQUET_OPTIONS) | {"compression": compression, "write_statistics": identity or False}
    with pq.ParquetWriter(path, schema, **options) as writer:

        def write(rows: Rows) -> int:
            if len(rows["l1_pt"]):
                writer.write_table(_table(rows, schema))
            return 0

        yield write


def _friend_write(writer: friend.FriendWriter, rows: Rows) -> int:
    counts = rows[ENTRY_COUNTS]
    writer.write(counts, rows["refit_pt"], rows["refit_eta"], rows["refit_phi"])
    return len(counts)
