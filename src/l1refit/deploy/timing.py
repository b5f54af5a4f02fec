"""Inference timing: throughput and per-call latency of an ONNX graph (onnxruntime), of the compiled kernel
(:mod:`l1refit.deploy.native`) or of PyTorch eager, per batch.

Inputs are pre-generated hardware integers (:func:`~l1refit.deploy.hw_inputs.random_hw`), so reading data is never
timed; throughput is the median over repeats, latency the median and 99th percentile of single calls. The rules are
in docs/deploy.md (Table 3).
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from l1refit.deploy.flops import cpu_peak, mlp_flops
from l1refit.deploy.hw_inputs import random_hw
from l1refit.deploy.metadata import graph_inputs
from l1refit.deploy.runtime import ACCELERATORS, CPU, make_session

log = logging.getLogger(__name__)

MEASURED = "measured"  # the ``source`` of a row timed here (Table 3 also holds the paper's rows)
DEFAULT_BATCH_SIZES = (1, 256, 1024, 4096, 16384, 65536)


def _onnx_caller(session: ort.InferenceSession, x: np.ndarray, batch_size: int, io_binding: bool):
    """``call(start)``: one inference call on rows ``start : start + batch_size`` of ``x``."""
    name_in, out = session.get_inputs()[0].name, session.get_outputs()[0]
    if not io_binding:
        return lambda start: session.run([out.name], {name_in: x[start : start + batch_size]})
    binding = session.io_binding()
    buffer = np.empty((batch_size, out.shape[1]), dtype=np.float32)
    binding.bind_output(out.name, "cpu", 0, np.float32, list(buffer.shape), buffer.ctypes.data)

    def call(start: int) -> None:
        binding.bind_cpu_input(name_in, x[start : start + batch_size])
        session.run_with_iobinding(binding)

    call.buffer = buffer  # keeps it alive as long as the caller
    return call


def _call_loop(call: Callable[[int], object], starts: np.ndarray, out: np.ndarray,
               barrier: threading.Barrier | None) -> None:  # fmt: skip
    """Run ``call`` at every start and store each call's seconds in ``out`` (after ``barrier``, if any)."""
    clock, positions = time.perf_counter, starts.tolist()
    if barrier is not None:
        barrier.wait()
    for i, start in enumerate(positions):
        t0 = clock()
        call(start)
        out[i] = clock() - t0


def _time_calls(callers: Sequence[Callable[[int], object]], n_x: int, batch_size: int, calls: int, repeats: int,
                warmup: int = 3) -> tuple[list[float], np.ndarray]:  # fmt: skip
    """Throughput (rows/s) per repeat and every call's seconds; callers run concurrently, one Python thread each."""
    n_blocks = max(1, n_x // batch_size)
    per_caller = max(1, calls // len(callers))
    starts = [((np.arange(per_caller) + k * n_blocks // len(callers)) % n_blocks) * batch_size
              for k in range(len(callers))]  # fmt: skip
    for call, first in zip(callers, starts, strict=True):
        for start in first[:warmup]:
            call(int(start))
    throughputs, latencies = [], []
    for _ in range(repeats):
        times = [np.empty(per_caller) for _ in callers]
        if len(callers) == 1:
            t_start = time.perf_counter()
            _call_loop(callers[0], starts[0], times[0], None)
            wall = time.perf_counter() - t_start
        else:
            barrier = threading.Barrier(len(callers) + 1)
            workers = [threading.Thread(target=_call_loop, args=(call, first, out, barrier))
                       for call, first, out in zip(callers, starts, times, strict=True)]  # fmt: skip
            for worker in workers:
                worker.start()
            barrier.wait()
            t_start = time.perf_counter()
            for worker in workers:
                worker.join()
            wall = time.perf_counter() - t_start
        throughputs.append(len(callers) * per_caller * batch_size / wall)
        latencies.append(np.concatenate(times))
    return throughputs, np.concatenate(latencies)


def _measure(callers: Sequence[Callable[[int], object]], n_x: int, batch_size: int, *, n_rows: int, max_calls: int,
             repeats: int, fields: dict) -> dict:  # fmt: skip
    """One row: ``clip(n_rows // batch_size, 8, max_calls)`` calls per repeat, timed and summarised, and logged."""
    calls = max(8, min(max_calls, n_rows // batch_size))
    throughputs, latencies = _time_calls(callers, n_x, batch_size, calls, repeats)
    row = {
        "batch_size": batch_size,
        "calls": calls,
        **fields,
        "throughput_per_s": float(statistics.median(throughputs)),
        "throughput_min_per_s": float(min(throughputs)),
        "throughput_max_per_s": float(max(throughputs)),
        "latency_median_us": float(np.median(latencies) * 1e6),
        "latency_p99_us": float(np.quantile(latencies, 0.99) * 1e6),
        "source": MEASURED,
    }
    log.info(f"{row['config']:<60} batch {batch_size:>6}: {row['throughput_per_s'] / 1e6:7.2f} M/s, "
             f"call {row['latency_median_us']:9.1f} us (p99 {row['latency_p99_us']:9.1f})")  # fmt: skip
    return row


def _with_batch_one(batch_sizes: Iterable[int]) -> list[int]:
    sizes = sorted({int(b) for b in batch_sizes} | {1})
    if sizes[0] < 1:
        raise ValueError(f"batch sizes must be >= 1, got {sizes[0]}")
    return sizes


def _graph_inputs(path: str | Path, inputs: np.ndarray | None, largest_batch: int, n_rows: int,
                  seed: int) -> np.ndarray:  # fmt: skip
    """The timing inputs of a graph: ``inputs``, or ``n_rows`` random hardware rows of its input columns; float32,
    C-contiguous, repeated up to the largest batch."""
    x = inputs if inputs is not None else random_hw(max(n_rows, largest_batch), graph_inputs(path), seed)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if len(x) < largest_batch:
        x = np.ascontiguousarray(np.resize(x, (largest_batch, x.shape[1])))
    return x


def config_label(backend: str, precision: str, graph: str, threads: int, sessions: int) -> str:
    """A short name of one measured configuration (a line of the throughput plot)."""
    if sessions > 1:
        par = f"{sessions} sessions x {threads} thread{'s' if threads > 1 else ''}"
    else:
        par = f"{threads} thread{'s' if threads > 1 else ''}"
    graph_part = f", {graph} graph" if graph and graph != "n/a" else ""
    return f"{backend}{graph_part}, {precision}, {par}"


def _device(providers: Sequence[str]) -> str:
    if providers[0] == "CPUExecutionProvider":
        peak = cpu_peak()
        return f"{peak.model} ({peak.cores} cores)"
    return f"GPU via {providers[0]}"


def time_onnx(path: str | Path, *, threads: int = 1, batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
              n_rows: int = 1 << 20, repeats: int = 5, providers: Sequence[str] = CPU, sessions: int = 1,
              io_binding: bool = True, max_calls: int = 2000, inputs: np.ndarray | None = None, seed: int = 0,
              precision: str = "fp32", graph: str = "exported", backend: str | None = None) -> list[dict]:  # fmt: skip
    """Throughput and per-call latency of an ONNX graph per batch size, one row each; batch 1 always.

    ``n_rows`` rows of inputs are pre-generated (or ``inputs`` is used) and each repeat runs
    ``clip(n_rows // batch_size, 8, max_calls)`` calls, shared among ``sessions`` concurrent sessions (Python
    threads; onnxruntime releases the GIL). The output buffer is bound once per batch size (IOBinding), the input
    per call (no copy). Each row is logged as it is measured.
    """
    if sessions < 1:
        raise ValueError(f"sessions must be >= 1, got {sessions}")
    sizes = _with_batch_one(batch_sizes)
    x = _graph_inputs(path, inputs, sizes[-1], n_rows, seed)
    backend = backend or ("onnxruntime CPU" if providers[0] == "CPUExecutionProvider"
                          else ACCELERATORS.get(providers[0], f"onnxruntime {providers[0]}"))  # fmt: skip
    fields = {"backend": backend, "precision": precision, "graph": graph, "device": _device(providers),
              "threads": threads, "sessions": sessions}  # fmt: skip
    fields["config"] = config_label(backend, precision, graph, threads, sessions)
    fields["flops"] = mlp_flops(path)
    session_list = [make_session(path, threads, providers) for _ in range(sessions)]
    return [
        _measure([_onnx_caller(s, x, batch_size, io_binding) for s in session_list], len(x), batch_size,
                 n_rows=n_rows, max_calls=max_calls, repeats=repeats, fields=fields)
        for batch_size in sizes
    ]  # fmt: skip


def time_torch(model, *, threads: int = 1, batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES, n_rows: int = 1 << 20,
               repeats: int = 5, max_calls: int = 2000, inputs: np.ndarray | None = None,
               seed: int = 0) -> list[dict]:  # fmt: skip
    """The same measurement in PyTorch eager (:class:`~l1refit.deploy.onnx_export.Deployable`: the graph's inputs
    and outputs)."""
    import torch

    from l1refit.deploy.onnx_export import Deployable

    module = Deployable(model).eval()
    sizes = _with_batch_one(batch_sizes)
    x = inputs if inputs is not None else random_hw(max(n_rows, sizes[-1]), model.inputs, seed)
    x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    fields = {"backend": "PyTorch eager CPU", "precision": "fp32", "graph": "n/a", "device": _device(CPU),
              "threads": threads, "sessions": 1}  # fmt: skip
    fields["config"] = config_label(fields["backend"], "fp32", "n/a", threads, 1)
    linear = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    fields["flops"] = sum(2 * m.in_features * m.out_features for m in linear)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        with torch.inference_mode():
            for batch_size in sizes:

                def call(start: int, batch_size=batch_size) -> None:
                    module(x_t[start : start + batch_size])

                rows.append(_measure([call], len(x_t), batch_size, n_rows=n_rows, max_calls=max_calls,
                                     repeats=repeats, fields=fields))  # fmt: skip
    finally:
        torch.set_num_threads(old_threads)
    return rows


def time_native(path: str | Path, *, sessions: int = 1, batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
                n_rows: int = 1 << 20, repeats: int = 5, max_calls: int = 2000, inputs: np.ndarray | None = None,
                seed: int = 0) -> list[dict]:  # fmt: skip
    """The same measurement for the compiled kernel running the optimised graph ``path``: ``sessions`` concurrent
    callers (Python threads, each with its output buffer; the kernel runs without the GIL), one core each."""
    from l1refit.deploy.native import BACKEND, NativeMLP

    if sessions < 1:
        raise ValueError(f"sessions must be >= 1, got {sessions}")
    kernel = NativeMLP.from_onnx(path)
    sizes = _with_batch_one(batch_sizes)
    x = _graph_inputs(path, inputs, sizes[-1], n_rows, seed)
    fields = {"backend": BACKEND, "precision": "fp32", "graph": "optimised", "device": _device(CPU), "threads": 1,
              "sessions": sessions, "config": config_label(BACKEND, "fp32", "optimised", 1, sessions),
              "flops": mlp_flops(path)}  # fmt: skip

    def caller(batch_size: int) -> Callable[[int], None]:
        out = np.empty((batch_size, 3), dtype=np.float32)
        return lambda start: kernel.run_into(x[start : start + batch_size], out)

    return [
        _measure([caller(batch_size) for _ in range(sessions)], len(x), batch_size, n_rows=n_rows,
                 max_calls=max_calls, repeats=repeats, fields=fields)
        for batch_size in sizes
    ]  # fmt: skip
