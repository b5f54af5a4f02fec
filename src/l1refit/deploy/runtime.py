"""onnxruntime sessions: the one place a graph is opened, with its thread counts, and run over many rows.

Every caller gets the same session options (one inter-op thread, sequential execution, all graph optimisations,
errors-only logging) except the export's parity check, which keeps onnxruntime's own defaults (``threads=None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

CPU = ("CPUExecutionProvider",)
ACCELERATORS = {"CUDAExecutionProvider": "onnxruntime CUDA", "TensorrtExecutionProvider": "onnxruntime TensorRT"}
CHUNK = 65_536  # rows per onnxruntime call: the graph's intermediates stay small and in cache


def check_threads(threads: int) -> int:
    """``threads`` if it is a usable thread count (>= 1), else a ValueError."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return threads


def make_session(path: str | Path, threads: int | None = 1, providers: Sequence[str] = CPU, *,
                 profile_prefix: str | None = None) -> ort.InferenceSession:  # fmt: skip
    """An onnxruntime session: ``threads`` intra-op threads, one inter-op thread, sequential, all optimisations.

    ``threads=None`` keeps onnxruntime's defaults for the thread pools and the log level (the parity check);
    ``profile_prefix`` turns the profiler on, writing its JSON under that prefix.
    """
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = check_threads(threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=list(providers))


def run_session(session: ort.InferenceSession, x: np.ndarray, input_name: str, output_name: str,
                chunk: int = CHUNK) -> np.ndarray:  # fmt: skip
    """The (N, 3) float32 output for all rows of ``x`` (float32 (N, n_inputs)), ``chunk`` rows per call."""
    out = np.empty((len(x), 3), np.float32)
    for start in range(0, len(x), chunk):
        stop = start + chunk
        out[start:stop] = session.run([output_name], {input_name: x[start:stop]})[0]
    return out


def run_onnx(path: str | Path, x: np.ndarray, threads: int = 1, chunk: int = CHUNK) -> np.ndarray:
    """The graph's output for all rows of ``x`` (float32 (N, n_inputs)), in chunks that stay in cache."""
    session = make_session(path, threads)
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    return run_session(session, np.ascontiguousarray(x, dtype=np.float32), input_name, output_name, chunk)


def accelerator_providers() -> list[str]:
    """The GPU execution providers this onnxruntime build offers (empty on the CPU wheel)."""
    return [name for name in ACCELERATORS if name in ort.get_available_providers()]
