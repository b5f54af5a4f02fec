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
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from l1refit.deploy import friend
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
from l1refit.deploy.runtime import CPU, check_threads, make_session, run_session
from l1refit.errors import L1RefitError
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


class RefitError(L1RefitError, ValueError):
    """A model or an input that cannot be refitted: not an l1refit ONNX export, or missing model inputs."""


class InputError(RefitError):
    """Input values the model cannot take (the firmware: integers outside their uGMT types); refit adds the file."""


# ---------------------------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class Model:
    """An exported graph in an onnxruntime session: ``model(x)`` maps (N, len(inputs)) float32 to (N, 3) φ, η, pT.

    With ``kernel`` (a :class:`l1refit.deploy.native.NativeMLP` of the optimised graph) the compiled kernel computes
    it instead of the session."""

    path: Path
    inputs: tuple[str, ...]
    metadata: dict[str, str]
    session: ort.InferenceSession
    input_name: str
    output_name: str
    graph: str = "exported"  # or "optimised": the equivalent graph of l1refit.deploy.optimize, built on loading
    kernel: Any = None
    dtype: ClassVar[np.dtype] = np.dtype(np.float32)  # what __call__ takes: float32 holds every hardware integer

    @property
    def refit_metadata(self) -> dict[str, str]:
        """What the output says about the engine (the firmware's says more: fpga/refit.py)."""
        return {"l1refit.refit.engine": self.engine, "l1refit.refit.graph": self.graph}

    @property
    def engine(self) -> str:
        return "onnx" if self.kernel is None else "kernel"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.kernel is not None:
            return self.kernel(x)
        return run_session(self.session, x, self.input_name, self.output_name)


def load_model(path: str | os.PathLike, *, threads: int = 1, optimise: bool = True, kernel: bool = False) -> Model:
    """Open an exported model (:mod:`l1refit.deploy.onnx_export`) on the CPU with ``threads`` intra-op threads.

    With ``optimise`` (default) the session runs the equivalent inference graph of
    :func:`l1refit.deploy.optimize.optimize_onnx` (scalers folded, physics as Gemms: about 1.6x the exported graph's
    throughput, equal within float rounding), built in memory and checked against the file's graph; a graph it
    cannot optimise runs as it is. ``kernel`` runs the optimised graph with the compiled kernel
    (:mod:`l1refit.deploy.native`; ``threads`` split each chunk's rows); a graph it cannot take, or no C compiler, is
    then a :class:`RefitError`. A file that is not ONNX, or an ONNX graph without the export's metadata and
    signature, is a :class:`RefitError` naming the file.
    """
    check_threads(threads)
    if kernel and not optimise:
        raise ValueError("the compiled kernel runs the optimised graph: kernel=True needs optimise=True")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        session = make_session(path, threads, CPU)  # errors only in onnxruntime's log: the exception says it
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
    shape = graph_in[input_name].shape
    width = shape[-1] if shape and len(shape) == 2 else None
    if not isinstance(width, int):  # a symbolic or missing width would fail deep inside onnxruntime at run time
        raise RefitError(
            f"{path}: input {input_name!r} has shape {shape}; an l1refit export takes (N, {len(inputs)}) with a fixed "
            f"width of {len(inputs)} columns ({', '.join(inputs)})"
        )
    if width != len(inputs):
        raise RefitError(f"{path}: the graph takes {width} input columns, its metadata list {len(inputs)}: {inputs}")
    graph = "optimised" if "optimized" in metadata else "exported"
    native = _kernel(path, path, threads) if kernel and graph == "optimised" else None
    if optimise and graph == "exported":
        session, graph, native = _optimised_session(path, threads, session, kernel)
    return Model(path, inputs, metadata, session, input_name, output_name, graph, native)


def _kernel(origin: Path, optimised: Path, threads: int):
    """The compiled kernel of the optimised graph ``optimised`` (of the model file ``origin``), or a RefitError."""
    from l1refit.deploy.native import NativeKernelError, NativeMLP

    try:
        native = NativeMLP.from_onnx(optimised, threads=threads)
    except (NativeKernelError, ValueError) as err:
        raise RefitError(f"{origin}: the compiled kernel cannot run this model: {err}") from None
    log.info("%s: refitting with the compiled kernel (l1refit.deploy.native), %d thread(s)", origin, threads)
    return native


def _optimised_session(path: Path, threads: int, exported: ort.InferenceSession,
                       kernel: bool = False) -> tuple[ort.InferenceSession, str, Any]:  # fmt: skip
    """(session, graph, kernel): the optimised graph of ``path`` (built in a temporary directory), or ``exported``
    if the graph cannot be optimised (not the export's structure; an error when the kernel was asked for); logged
    either way. ``kernel``: also the compiled kernel of the optimised graph (else None)."""
    from l1refit.deploy.optimize import optimize_onnx  # onnx and its checker: only when a graph is optimised

    with tempfile.TemporaryDirectory(prefix="l1refit-refit-") as folder:
        try:
            optimised = optimize_onnx(path, Path(folder) / "optimised.onnx")
        except Exception as err:  # ValueError (structure), RuntimeError (not equivalent), onnx's checker: all safe
            if kernel:
                raise RefitError(f"{path}: the compiled kernel needs the optimised graph, which cannot be built "
                                 f"({type(err).__name__}: {err})") from None  # fmt: skip
            log.warning("%s: runs as exported, its graph cannot be optimised (%s: %s)", path, type(err).__name__, err)
            return exported, "exported", None
        session = make_session(optimised, threads, CPU)
        native = _kernel(path, optimised, threads) if kernel else None
    if native is None:
        log.info("%s: refitting with the optimised inference graph (l1refit.deploy.optimize)", path)
    return session, "optimised", native


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
    when ``kernel`` (:func:`load_model`).
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
