"""The engine ``l1refit refit`` runs: an exported ONNX model in onnxruntime, as its optimised graph by default or
with the compiled kernel (:mod:`l1refit.deploy.native`), checked when it is loaded, and the refit's errors.

The firmware engine (:mod:`l1refit.deploy.fpga.refit`) has the same interface (``inputs``, ``dtype``, ``graph``,
``refit_metadata``, ``__call__``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort

from l1refit.deploy.runtime import CPU, check_threads, make_session, run_session
from l1refit.errors import L1RefitError

log = logging.getLogger(__name__)


class RefitError(L1RefitError, ValueError):
    """A model or an input that cannot be refitted: not an l1refit ONNX export, or missing model inputs."""


class InputError(RefitError):
    """Input values the model cannot take (the firmware: integers outside their uGMT types); refit adds the file."""


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
