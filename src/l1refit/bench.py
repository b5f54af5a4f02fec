"""Paper Table 3 on our hardware: inference throughput and latency of the deployable graph, and an int8 model.

The paper ran model B on Micron's deep-learning accelerator (MDLA) on two FPGA boards (:data:`PAPER_TABLE3`) against
a requirement of 10⁶ inferences per second per L1 scouting board (:data:`REQUIREMENT`). Here the same network, as
the ONNX graph of :mod:`l1refit.export` (hardware integers in, corrected φ, η, pT out), runs on the CPU with
onnxruntime, on CUDA / TensorRT where onnxruntime offers them, and in PyTorch eager as a reference.

Measurement rules (:func:`benchmark_onnx`):

* inputs are pre-generated hardware integers (float32) in the skim's ranges (:func:`random_hw`), never the skim
  file, so that reading data is not timed; each call takes the next ``batch_size`` rows of that block;
* every session has ``inter_op_num_threads=1``, sequential execution and all graph optimisations; ``threads`` is
  the intra-op pool; ``sessions > 1`` runs that many sessions concurrently from Python threads (onnxruntime
  releases the GIL while it runs), each on its own share of the calls;
* the output buffer is bound once per batch size (IOBinding), the input is bound per call (no copy);
* throughput is rows per wall-clock second of a whole repeat, the median of ``repeats``; latency is the time of one
  call (one batch), median and 99th percentile over all calls; the batch-1 row is the single-muon latency.

Two graphs are compared: the graph as exported, and :func:`optimize_onnx`'s equivalent inference graph, in which
the input and output scalers are folded into the first and last dense layers and the L1 physics (scales, φ
wrapping) is done with three tiny Gemms and one Floor instead of ~30 element-wise nodes on single columns — in the
exported graph those small broadcasting and column-gathering nodes cost as much as the MLP itself (see
:func:`profile_ops`). Timings on these shared machines vary by about ±30 %; nothing here asserts on them.

The paper's "latency" is the time per inference of a stream (726 ns for 1.3 M/s, 364 ns for 2.7 M/s: it halves
with two clusters), so :func:`table3` also gives ``ns_per_inference`` = 10⁹ / throughput for every row, next to the
measured per-call latency.

:func:`quantize_int8` makes the reduced-precision model: static QDQ quantisation calibrated on real skim rows,
int8 per-channel weights and uint8 activations at the inputs of the MLP's Gemm nodes only, so that the integer
inputs, the normalisation and the φ wrapping stay exact float; :func:`precision_metrics` shows what it costs in the
Table-2 metrics.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from onnx import helper, numpy_helper

from . import scales
from .io import atomic_path, write_csv
from .metrics import METRIC_COLUMNS, Windows, metrics, residuals

REQUIREMENT = 1e6  # inferences per second per L1 scouting board (paper §3.5)
PAPER_SOURCE = "paper (published)"
MEASURED = "measured"

# Paper Table 3: "Scouting neural network (Model B) performance on the MDLA, with the AC-510 and SB-852 FPGA-based
# boards". Throughputs are lower bounds as printed ("> 1 300 400" is the paper's figure, kept as published).
# Precision and batch size are not stated in the paper.
PAPER_TABLE3: tuple[dict, ...] = tuple(
    {
        "board": board,
        "clusters": clusters,
        "latency_ns": latency_ns,
        "throughput_per_s": throughput,
        "throughput_is_lower_bound": True,
        "model": "B",
        "backend": "Micron MDLA (FPGA)",
        "device": f"Micron {board}, {clusters} cluster{'s' if clusters > 1 else ''}",
        "source": PAPER_SOURCE,
    }
    for board, clusters, latency_ns, throughput in (
        ("AC-510", 1, 726, 1_300_400),
        ("AC-510", 2, 364, 2_700_000),
        ("SB-852", 1, 748, 1_300_000),
    )
)
PAPER_BEST = max(PAPER_TABLE3, key=lambda row: row["throughput_per_s"])

TABLE3_COLUMNS = (
    "backend", "precision", "graph", "device", "threads", "sessions", "clusters", "batch_size", "throughput_per_s",
    "ns_per_inference", "latency_median_us", "latency_p99_us", "vs_requirement", "gflops", "fp32_peak_fraction",
    "source", "config", "note",
)  # fmt: skip
DEFAULT_BATCH_SIZES = (1, 256, 1024, 4096, 16384, 65536)
CPU = ("CPUExecutionProvider",)
ACCELERATORS = {"CUDAExecutionProvider": "onnxruntime CUDA", "TensorrtExecutionProvider": "onnxruntime TensorRT"}
INT8 = "int8 (static QDQ)"
PHYSICS_PREFIX = "physics_"  # names of optimize_onnx's physics nodes: neither MLP FLOPs nor quantised

# Ranges of the hardware integers in the barrel skims (zero bias and muonia), per input column.
HW_RANGES = {
    "hwPhiAtVtx": (0, scales.HW_PHI_MAX),
    "hwPhi": (0, scales.HW_PHI_MAX),
    "hwEtaAtVtx": (-80, 81),
    "hwEta": (-80, 81),
    "hwPt": (7, 90),
    "charge": (-1, 1),
}


# ---------------------------------------------------------------------------------------------------------------
# the hardware and the arithmetic


def mlp_flops(path: str | Path) -> int:
    """FLOPs of one inference through the graph's dense layers: 2·in·out per Gemm/MatMul (4,544 for 4→32→32→32→3).

    Weights behind a DequantizeLinear (a QDQ int8 graph) count too; the physics nodes do not (element-wise ones,
    and the ``physics_*`` Gemms of :func:`optimize_onnx`'s graph).
    """
    proto = onnx.load_model(str(path))
    weights = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    dequantized = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    total = 0
    for node in proto.graph.node:
        if node.op_type in ("Gemm", "MatMul") and not node.name.startswith(PHYSICS_PREFIX):
            weight = dequantized.get(node.input[1], node.input[1])
            if weight in weights:
                total += 2 * math.prod(weights[weight][-2:])
    return total


@dataclass(frozen=True)
class CpuPeak:
    """FP32 peak of the cores this process may use: cores × GHz × FLOPs per cycle (FMA units × lanes × 2)."""

    model: str
    cores: int
    ghz: float
    isa: str
    fma_units: int
    lanes: int

    @property
    def flops_per_cycle(self) -> int:
        return self.fma_units * self.lanes * 2

    def gflops(self, cores: int | None = None) -> float:
        return min(cores or self.cores, self.cores) * self.ghz * self.flops_per_cycle

    def describe(self) -> str:
        units = f"{self.isa}, {self.fma_units} FMA units x {self.lanes} lanes x 2"
        return (f"{self.model}: {self.cores} cores x {self.ghz:g} GHz x {self.flops_per_cycle} FP32 FLOPs/cycle "
                f"({units}) = {self.gflops():.1f} GFLOP/s")  # fmt: skip


def cpu_peak(cpuinfo: str | None = None, cores: int | None = None) -> CpuPeak:
    """The FP32 peak from ``/proc/cpuinfo`` (what ``lscpu`` shows) and the CPU affinity of this process.

    Clock: the nominal one in the model name ("@ 2.10GHz"), else ``cpu MHz``. AVX-512 cores are counted with two
    512-bit FMA units (Xeon Scalable Gold/Platinum, Sapphire Rapids), AVX2 cores with two 256-bit units. The sustained
    AVX-512 clock can be lower than nominal and turbo higher; under KVM neither is visible, so nominal it is.
    """
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name", "unknown CPU")
    found = re.search(r"@\s*([\d.]+)\s*GHz", model)
    ghz = float(found.group(1)) if found else float(fields.get("cpu MHz", "0")) / 1000.0
    flags = set(fields.get("flags", "").split())
    if "avx512f" in flags:
        isa, units, lanes = "AVX-512 FMA", 2, 16
    elif {"avx2", "fma"} <= flags:
        isa, units, lanes = "AVX2 FMA", 2, 8
    else:
        isa, units, lanes = "SSE (mul+add)", 1, 4
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return CpuPeak(model=model, cores=cores, ghz=ghz, isa=isa, fma_units=units, lanes=lanes)


def random_hw(n: int, inputs: Sequence[str] = ("hwPhiAtVtx", "hwEtaAtVtx", "hwPt", "charge"), seed: int = 0):
    """``n`` rows of hardware integers (float32) in the skims' ranges, one column per model input."""
    rng = np.random.default_rng(seed)
    columns = []
    for name in inputs:
        if name not in HW_RANGES:
            raise ValueError(f"random_hw: no hardware range for input {name!r} (known: {', '.join(HW_RANGES)})")
        low, high = HW_RANGES[name]
        columns.append(rng.choice([-1, 1], n) if name == "charge" else rng.integers(low, high + 1, n))
    return np.ascontiguousarray(np.column_stack(columns), dtype=np.float32)


def graph_inputs(path: str | Path) -> tuple[str, ...]:
    """The skim columns the graph takes, in order (export metadata ``inputs``)."""
    proto = onnx.load_model(str(path), load_external_data=False)
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    if "inputs" not in meta:
        raise ValueError(f"{path}: no 'inputs' metadata; not a graph written by l1refit.export")
    return tuple(json.loads(meta["inputs"]))


# ---------------------------------------------------------------------------------------------------------------
# timing


def make_session(path: str | Path, threads: int = 1, providers: Sequence[str] = CPU,
                 profile_prefix: str | None = None) -> ort.InferenceSession:  # fmt: skip
    """An onnxruntime session: ``threads`` intra-op threads, one inter-op thread, sequential, all optimisations."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=list(providers))


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


def _calls_for(batch_size: int, n_rows: int, max_calls: int, min_calls: int = 8) -> int:
    return max(min_calls, min(max_calls, n_rows // batch_size))


def _result_row(throughputs: list[float], latencies: np.ndarray, **fields) -> dict:
    return {
        **fields,
        "throughput_per_s": float(statistics.median(throughputs)),
        "throughput_min_per_s": float(min(throughputs)),
        "throughput_max_per_s": float(max(throughputs)),
        "latency_median_us": float(np.median(latencies) * 1e6),
        "latency_p99_us": float(np.quantile(latencies, 0.99) * 1e6),
        "source": MEASURED,
    }


def _with_batch_one(batch_sizes: Iterable[int]) -> list[int]:
    sizes = sorted({int(b) for b in batch_sizes} | {1})
    if sizes[0] < 1:
        raise ValueError(f"batch sizes must be >= 1, got {sizes[0]}")
    return sizes


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


def benchmark_onnx(path: str | Path, *, threads: int = 1, batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
                   n_rows: int = 1 << 20, repeats: int = 5, providers: Sequence[str] = CPU, sessions: int = 1,
                   io_binding: bool = True, max_calls: int = 2000, inputs: np.ndarray | None = None, seed: int = 0,
                   precision: str = "fp32", graph: str = "exported", backend: str | None = None,
                   progress: Callable[[str], None] | None = None) -> list[dict]:  # fmt: skip
    """Throughput and per-call latency of an ONNX graph per batch size (see the module docstring); batch 1 always.

    ``n_rows`` rows of inputs are pre-generated (or ``inputs`` is used) and each repeat runs
    ``clip(n_rows // batch_size, 8, max_calls)`` calls, shared among ``sessions`` concurrent sessions.
    """
    if sessions < 1:
        raise ValueError(f"sessions must be >= 1, got {sessions}")
    sizes = _with_batch_one(batch_sizes)
    x = inputs if inputs is not None else random_hw(max(n_rows, sizes[-1]), graph_inputs(path), seed)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if len(x) < sizes[-1]:
        x = np.ascontiguousarray(np.resize(x, (sizes[-1], x.shape[1])))
    backend = backend or ("onnxruntime CPU" if providers[0] == "CPUExecutionProvider"
                          else ACCELERATORS.get(providers[0], f"onnxruntime {providers[0]}"))  # fmt: skip
    fields = {"backend": backend, "precision": precision, "graph": graph, "device": _device(providers),
              "threads": threads, "sessions": sessions}  # fmt: skip
    fields["config"] = config_label(backend, precision, graph, threads, sessions)
    fields["flops"] = mlp_flops(path)
    session_list = [make_session(path, threads, providers) for _ in range(sessions)]
    rows = []
    for batch_size in sizes:
        callers = [_onnx_caller(s, x, batch_size, io_binding) for s in session_list]
        calls = _calls_for(batch_size, n_rows, max_calls)
        throughputs, latencies = _time_calls(callers, len(x), batch_size, calls, repeats)
        rows.append(_result_row(throughputs, latencies, batch_size=batch_size, calls=calls, **fields))
        if progress:
            progress(_progress_line(rows[-1]))
    return rows


def _progress_line(row: dict) -> str:
    return (f"{row['config']:<60} batch {row['batch_size']:>6}: {row['throughput_per_s'] / 1e6:7.2f} M/s, "
            f"call {row['latency_median_us']:9.1f} us (p99 {row['latency_p99_us']:9.1f})")  # fmt: skip


def benchmark_torch(model, *, threads: int = 1, batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
                    n_rows: int = 1 << 20, repeats: int = 5, max_calls: int = 2000, inputs: np.ndarray | None = None,
                    seed: int = 0, progress: Callable[[str], None] | None = None) -> list[dict]:  # fmt: skip
    """The same measurement in PyTorch eager (``l1refit.export.Deployable``: same inputs, same outputs as the graph)."""
    import torch

    from .export import Deployable

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

                calls = _calls_for(batch_size, n_rows, max_calls)
                throughputs, latencies = _time_calls([call], len(x_t), batch_size, calls, repeats)
                rows.append(_result_row(throughputs, latencies, batch_size=batch_size, calls=calls, **fields))
                if progress:
                    progress(_progress_line(rows[-1]))
    finally:
        torch.set_num_threads(old_threads)
    return rows


def accelerator_providers() -> list[str]:
    """The GPU execution providers this onnxruntime build offers (empty on the CPU wheel)."""
    return [name for name in ACCELERATORS if name in ort.get_available_providers()]


def profile_ops(path: str | Path, *, batch_size: int = 4096, threads: int = 1, calls: int = 200,
                inputs: np.ndarray | None = None) -> tuple[pd.DataFrame, float]:  # fmt: skip
    """Where one call's time goes: onnxruntime's profiler, kernel µs per call per node, and the whole run's median µs.

    Returns (``DataFrame[op_type, node, us_per_call, share]`` sorted by time, median µs of ``model_run``); per-node
    times are medians over the calls (robust to a preempted call), ``share`` is of their sum.
    """
    x = inputs if inputs is not None else random_hw(batch_size, graph_inputs(path))
    x = np.ascontiguousarray(x[:batch_size], dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="l1refit-profile-") as tmp:
        session = make_session(path, threads, profile_prefix=str(Path(tmp) / "ort"))
        name = session.get_inputs()[0].name
        for _ in range(calls):
            session.run(None, {name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    kernel: dict[str, list[float]] = defaultdict(list)
    op_of: dict[str, str] = {}
    runs = []
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"][: -len("_kernel_time")]
            kernel[node].append(event["dur"])
            op_of[node] = event.get("args", {}).get("op_name", "?")
        elif event.get("name") == "model_run":
            runs.append(event["dur"])
    medians = {node: float(np.median(durations)) for node, durations in kernel.items()}
    total = sum(medians.values()) or 1.0
    frame = pd.DataFrame(
        [{"op_type": op_of[n], "node": n, "us_per_call": us, "share": us / total} for n, us in medians.items()]
    ).sort_values("us_per_call", ascending=False, ignore_index=True)
    return frame, float(np.median(runs[1:] if len(runs) > 1 else runs))


# ---------------------------------------------------------------------------------------------------------------
# the inference graph


def _arrays(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}


def _single_consumer(nodes: Sequence[onnx.NodeProto], tensor: str, op_type: str) -> onnx.NodeProto:
    users = [node for node in nodes if tensor in node.input]
    if len(users) != 1 or users[0].op_type != op_type:
        found = ", ".join(f"{n.op_type} {n.name}" for n in users) or "none"
        raise ValueError(f"optimize_onnx: expected one {op_type} reading {tensor!r}, found {found}")
    return users[0]


def _gemm_attributes(node: onnx.NodeProto) -> dict:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("transA", 0) or not attrs.get("transB", 0) or attrs.get("alpha", 1.0) != 1.0:
        raise ValueError(f"optimize_onnx: Gemm {node.name} is not Y = X·Wᵀ + b ({attrs})")
    return attrs


def _gemm(inputs: list[str], output: str, name: str) -> onnx.NodeProto:
    return helper.make_node("Gemm", inputs, [output], name=name, transB=1)


def optimize_onnx(onnx_path: str | Path, out_path: str | Path, *, check_rows: int = 20000) -> Path:
    """An equivalent inference graph of an exported model, checked against it; returns ``out_path``.

    * ``(hw − x_min) / x_scale`` is folded into the first Gemm (W/scale, b − W·min/scale) and
      ``y·y_scale + y_min`` into the last one, removing four broadcasting nodes on (N, 4) and (N, 3) tensors;
    * absolute-pT models: the L1 values and the corrections are one affine map, so
      ``y = Gemm(h, −W', C = Gemm(hw, S, c))`` gives (φ_raw − Δφ, η − Δη, pT − ΔpT) directly, and the φ wrap into
      (−π, π] is ``y + 2π·e₀·floor(0.5 − y₀/2π)`` (two Gemms and a Floor) — wrap(wrap(a) − b) = wrap(a − b);
    * relative-pT models keep the exported physics nodes (only the scalers are folded).

    The new graph is compared with the original on ``check_rows`` random inputs plus edge values (|Δφ| and |Δη| below
    10⁻⁴, |ΔpT| below 10⁻⁴·(1 + pT)); a difference is an error. The metadata is kept, with ``optimized`` added.
    """
    proto = onnx.load_model(str(onnx_path))
    graph, arrays = proto.graph, _arrays(proto)
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    inputs = json.loads(meta["inputs"])
    hw_name, out_name = graph.input[0].name, graph.output[0].name
    nodes = list(graph.node)

    sub = next((n for n in nodes if n.op_type == "Sub" and list(n.input) == [hw_name, "x_min"]), None)
    if sub is None:
        raise ValueError("optimize_onnx: no input normalisation Sub(hw, x_min) found")
    div = _single_consumer(nodes, sub.output[0], "Div")
    first = _single_consumer(nodes, div.output[0], "Gemm")
    mul = next((n for n in nodes if n.op_type == "Mul" and "y_scale" in n.input), None)
    last = next((n for n in nodes if n.op_type == "Gemm" and mul is not None and n.output[0] in mul.input), None)
    if last is None or last.name == first.name:
        raise ValueError("optimize_onnx: no output de-normalisation Mul(Gemm(...), y_scale) after a hidden layer")
    add = _single_consumer(nodes, mul.output[0], "Add")
    for gemm in (first, last):
        _gemm_attributes(gemm)

    f64 = np.float64
    x_min, x_scale = arrays["x_min"].astype(f64), arrays["x_scale"].astype(f64)
    y_min, y_scale = arrays["y_min"].astype(f64), arrays["y_scale"].astype(f64)
    w1 = arrays[first.input[1]].astype(f64) / x_scale[None, :]
    b1 = arrays[first.input[2]].astype(f64) - w1 @ x_min
    w_last = arrays[last.input[1]].astype(f64) * y_scale[:, None]
    b_last = arrays[last.input[2]].astype(f64) * y_scale + y_min

    # the MLP: every node the last Gemm depends on, minus the normalisation
    producer = {out: n for n in nodes for out in n.output}
    keep, todo = set(), [last.name]
    by_name = {n.name: n for n in nodes}
    while todo:
        node = by_name[todo.pop()]
        if node.name in keep or node.name in (sub.name, div.name):
            continue
        keep.add(node.name)
        todo += [producer[i].name for i in node.input if i in producer]
    mlp = [n for n in nodes if n.name in keep and n.name != last.name]

    new_first = _gemm([hw_name, "opt_w1", "opt_b1"], first.output[0], first.name)
    new_first.attribute.extend(a for a in first.attribute if a.name not in ("transB",))
    mlp = [new_first if n.name == first.name else n for n in mlp]
    f32 = np.float32
    new_arrays = {"opt_w1": w1.astype(f32), "opt_b1": b1.astype(f32)}
    h_last = last.input[0]
    if meta.get("pt_target", "absolute") == "absolute":
        i_phi, i_eta, i_pt = (inputs.index(name) for name in ("hwPhiAtVtx", "hwEtaAtVtx", "hwPt"))
        s = np.zeros((3, len(inputs)))
        s[0, i_phi], s[1, i_eta], s[2, i_pt] = scales.PHI_LSB_CMSSW, scales.ETA_LSB, scales.PT_LSB
        two_pi = 2.0 * math.pi
        new_arrays |= {
            "opt_l1_scale": s.astype(f32),
            "opt_l1_offset": (np.array([0.0, 0.0, -scales.PT_LSB]) - b_last).astype(f32),
            "opt_w_last": (-w_last).astype(f32),
            "opt_wrap_in": np.array([[-1.0 / two_pi, 0.0, 0.0]], dtype=f32),
            "opt_half": np.array([0.5], dtype=f32),
            "opt_wrap_out": np.array([[two_pi], [0.0], [0.0]], dtype=f32),
        }
        tail = [
            _gemm([hw_name, "opt_l1_scale", "opt_l1_offset"], "opt_l1", "physics_l1_values"),
            _gemm([h_last, "opt_w_last", "opt_l1"], "opt_raw", "mlp_output_plus_l1"),
            _gemm(["opt_raw", "opt_wrap_in", "opt_half"], "opt_turns", "physics_phi_turns"),
            helper.make_node("Floor", ["opt_turns"], ["opt_k"], name="physics_floor"),
            _gemm(["opt_k", "opt_wrap_out", "opt_raw"], out_name, "physics_wrap"),
        ]
    else:  # keep the exported physics: it reads the de-normalised differences (the Add's output)
        new_arrays |= {"opt_w_last": w_last.astype(f32), "opt_b_last": b_last.astype(f32)}
        physics = [n for n in nodes if n.name not in keep and n.name not in (sub.name, div.name, mul.name, add.name)]
        tail = [_gemm([h_last, "opt_w_last", "opt_b_last"], add.output[0], last.name), *physics]
    used = {i for n in [*mlp, *tail] for i in n.input}
    initializers = [init for init in graph.initializer if init.name in used and init.name not in new_arrays]
    initializers += [numpy_helper.from_array(a, name) for name, a in new_arrays.items()]
    new_graph = helper.make_graph([*mlp, *tail], graph.name + "_inference", list(graph.input), list(graph.output),
                                  initializers)  # fmt: skip
    new = helper.make_model(new_graph, opset_imports=list(proto.opset_import), ir_version=proto.ir_version,
                            producer_name=proto.producer_name, doc_string=proto.doc_string)  # fmt: skip
    how = "scalers folded into the Gemms" + ("; physics as Gemm/Floor" if "opt_wrap_in" in new_arrays else "")
    for key, value in {**meta, "optimized": f"l1refit.bench.optimize_onnx: {how}"}.items():
        entry = new.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(new, full_check=True)
    with atomic_path(out_path) as tmp:
        onnx.save_model(new, str(tmp))
        _check_equivalent(onnx_path, tmp, inputs, check_rows)
    return Path(out_path)


def _edge_rows(inputs: Sequence[str]) -> np.ndarray:
    """Every combination of the extremes of each input range (φ 0 and 575 wrap; η ±; pT low/high; both charges)."""
    grids = np.meshgrid(*[np.array(HW_RANGES.get(name, (0, 1)), dtype=np.float32) for name in inputs])
    return np.column_stack([g.ravel() for g in grids])


def _check_equivalent(reference: str | Path, candidate: str | Path, inputs: Sequence[str], rows: int) -> None:
    x = np.concatenate([_edge_rows(inputs), random_hw(rows, inputs, seed=12345)])
    want, got = run_onnx(reference, x).astype(np.float64), run_onnx(candidate, x).astype(np.float64)
    d_phi = np.abs(scales.wrap_phi(got[:, 0] - want[:, 0]))
    d_eta, d_pt = np.abs(got[:, 1] - want[:, 1]), np.abs(got[:, 2] - want[:, 2])
    tol_pt = 1e-4 * (1.0 + np.abs(want[:, 2]))
    if d_phi.max() > 1e-4 or d_eta.max() > 1e-4 or np.any(d_pt > tol_pt):
        raise RuntimeError(f"optimize_onnx: the new graph differs from {reference}: max |dphi| {d_phi.max():.3g}, "
                           f"|deta| {d_eta.max():.3g}, |dpt| {d_pt.max():.3g}")  # fmt: skip
    if np.any(got[:, 0] <= -np.float32(np.pi)) or np.any(got[:, 0] > np.float32(np.pi)):
        raise RuntimeError("optimize_onnx: phi outside (-pi, pi]")


# ---------------------------------------------------------------------------------------------------------------
# int8


def _hw_rows(rows, inputs: Sequence[str]) -> np.ndarray:
    if isinstance(rows, pd.DataFrame):
        missing = [name for name in inputs if name not in rows.columns]
        if missing:
            raise ValueError(f"calibration rows lack input column(s) {', '.join(missing)}")
        rows = rows[list(inputs)].to_numpy()
    x = np.ascontiguousarray(rows, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(inputs) or len(x) == 0:
        raise ValueError(f"expected a non-empty (N, {len(inputs)}) array of hardware integers, got {x.shape}")
    return x


class _Reader:
    """onnxruntime ``CalibrationDataReader``: equal-sized batches of hardware rows (the histogram calibrators
    fail on a short last batch)."""

    def __init__(self, name: str, x: np.ndarray, batch_size: int) -> None:
        batch_size = min(batch_size, len(x))
        self._batches = iter([{name: x[i : i + batch_size]} for i in range(0, len(x) - batch_size + 1, batch_size)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # part of the reader protocol; a calibration reads once
        pass


def quantize_int8(onnx_path: str | Path, out_path: str | Path, calibration_rows, *, per_channel: bool = True,
                  batch_size: int = 1000) -> dict:  # fmt: skip
    """Static QDQ int8 version of an exported graph, calibrated (min-max) on ``calibration_rows``; returns its notes.

    ``calibration_rows``: a skim DataFrame (the graph's input columns are taken) or an (N, n_inputs) array.
    Only the MLP's Gemm nodes are quantised: int8 weights (per output channel when ``per_channel``) and uint8
    activations at their inputs; their outputs stay float (``OpTypesToExcludeOutputQuantization``), as an FPGA
    keeps wide accumulators, so the requantisation happens once per layer, after the activation. The normalisation,
    the L1 scales and the φ wrapping stay float and exact. If static quantisation fails, dynamic quantisation of the
    same nodes is used instead and the notes say why. The notes are also in the model's metadata (``quantization``).
    The input must be the exported graph: its normalisation gives every input column its own [0, 1] range before
    the first quantiser (an :func:`optimize_onnx` graph is refused).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    proto = onnx.load_model(str(onnx_path))
    if any(entry.key == "optimized" for entry in proto.metadata_props):
        raise ValueError(f"{onnx_path}: quantise the exported graph, not optimize_onnx's: with the normalisation "
                         "folded away one uint8 scale would span all raw inputs (φ 0-575 and charge ±1 alike), and "
                         "the physics would read the quantised integers")  # fmt: skip
    inputs = graph_inputs(onnx_path)
    x = _hw_rows(calibration_rows, inputs)
    gemms = [n.name for n in proto.graph.node
             if n.op_type in ("Gemm", "MatMul") and not n.name.startswith(PHYSICS_PREFIX)]  # fmt: skip
    notes = {"nodes": gemms, "calibration_rows": len(x), "per_channel": per_channel, "weights": "int8",
             "activations": "uint8 at Gemm inputs; Gemm outputs float"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="l1refit-int8-") as tmp:
        raw = Path(tmp) / "int8.onnx"
        try:
            quantize_static(
                str(onnx_path), str(raw), _Reader(proto.graph.input[0].name, x, batch_size),
                quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                per_channel=per_channel, nodes_to_quantize=gemms, op_types_to_quantize=["Gemm", "MatMul"],
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"]},
            )  # fmt: skip
            notes["method"] = "static QDQ (min-max calibration)"
        except Exception as err:  # any calibration failure falls back to dynamic quantisation, and says so
            quantize_dynamic(str(onnx_path), str(raw), weight_type=QuantType.QInt8, per_channel=per_channel,
                             nodes_to_quantize=gemms, op_types_to_quantize=["Gemm", "MatMul"])  # fmt: skip
            notes["method"] = f"dynamic (static failed: {type(err).__name__}: {err})"
            notes["activations"] = "uint8, scale computed per call"
        quantized = onnx.load_model(str(raw))
    present = {entry.key for entry in quantized.metadata_props}
    for entry in proto.metadata_props:
        if entry.key not in present:
            quantized.metadata_props.add().CopyFrom(entry)
    entry = quantized.metadata_props.add()
    entry.key, entry.value = "quantization", json.dumps(notes)
    with atomic_path(out_path) as tmp:
        onnx.save_model(quantized, str(tmp))
    return notes


def int8_label(path: str | Path) -> str:
    """The precision label of a :func:`quantize_int8` graph: static QDQ, or dynamic where static failed."""
    proto = onnx.load_model(str(path), load_external_data=False)
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    method = json.loads(meta.get("quantization", "{}")).get("method", "")
    return "int8 (dynamic)" if method.startswith("dynamic") else INT8


def run_onnx(path: str | Path, x: np.ndarray, threads: int = 1, chunk: int = 65536) -> np.ndarray:
    """The graph's output for all rows of ``x`` (float32 (N, n_inputs)), in chunks that stay in cache."""
    session = make_session(path, threads)
    name = session.get_inputs()[0].name
    x = np.ascontiguousarray(x, dtype=np.float32)
    parts = [session.run(None, {name: x[i : i + chunk]})[0] for i in range(0, len(x), chunk)]
    return np.concatenate(parts) if parts else np.empty((0, 3), dtype=np.float32)


def precision_metrics(float_onnx: str | Path, int8_onnx: str | Path, skim_df: pd.DataFrame, *,
                      n_rows: int | None = 100_000, windows: Windows | None = None) -> pd.DataFrame:  # fmt: skip
    """Table-2 metrics of GMT, the float graph and the int8 graph on the first ``n_rows`` skim rows (all if None).

    Extra columns compare each model with the float graph: median and 99th-percentile |Δφ| (rad), |Δη|, and
    |ΔpT|/pT of the difference int8 − float.
    """
    df = skim_df.iloc[:n_rows] if n_rows else skim_df
    if df.empty:
        raise ValueError("precision_metrics: no skim rows")
    x = _hw_rows(df, graph_inputs(float_onnx))
    reco = (df["reco_phi"].to_numpy(), df["reco_eta"].to_numpy(), df["reco_pt"].to_numpy())
    outputs = {"fp32": run_onnx(float_onnx, x).astype(np.float64),
               int8_label(int8_onnx): run_onnx(int8_onnx, x).astype(np.float64)}  # fmt: skip
    rows = [{"model": "GMT", "precision": "hardware scales", "n_rows": len(df),
             **metrics(residuals(df["l1_phi"], df["l1_eta"], df["l1_pt"], *reco), windows)}]  # fmt: skip
    reference = outputs["fp32"]
    for precision, out in outputs.items():
        d_phi = np.abs(scales.wrap_phi(out[:, 0] - reference[:, 0]))
        d_eta = np.abs(out[:, 1] - reference[:, 1])
        d_pt = np.abs(out[:, 2] - reference[:, 2]) / np.maximum(np.abs(reference[:, 2]), 1e-9)
        rows.append({
            "model": "NN", "precision": precision, "n_rows": len(df),
            **metrics(residuals(out[:, 0], out[:, 1], out[:, 2], *reco), windows),
            "dphi_vs_fp32_median": float(np.median(d_phi)), "dphi_vs_fp32_p99": float(np.quantile(d_phi, 0.99)),
            "deta_vs_fp32_median": float(np.median(d_eta)), "deta_vs_fp32_p99": float(np.quantile(d_eta, 0.99)),
            "dpt_rel_vs_fp32_median": float(np.median(d_pt)), "dpt_rel_vs_fp32_p99": float(np.quantile(d_pt, 0.99)),
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    return frame[["model", "precision", "n_rows", *METRIC_COLUMNS, *[c for c in frame if c.endswith(("_median",
                  "_p99"))]]]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# the table and the plot


def paper_rows() -> list[dict]:
    """Paper Table 3 as rows of :func:`table3` (latency: the paper's time per inference)."""
    rows = []
    for paper in PAPER_TABLE3:
        rows.append({
            "backend": paper["backend"], "precision": "not stated", "graph": "n/a", "device": paper["device"],
            "clusters": paper["clusters"], "throughput_per_s": float(paper["throughput_per_s"]),
            "latency_median_us": paper["latency_ns"] / 1000.0, "source": PAPER_SOURCE,
            "config": f"paper: {paper['device']}",
            "note": f"throughput '> {paper['throughput_per_s']:,}' (lower bound); latency {paper['latency_ns']} ns as "
                    "published; batch size and precision not stated",
        })  # fmt: skip
    return rows


def table3(rows: Iterable[dict], *, include_paper: bool = True, peak: CpuPeak | None = None) -> pd.DataFrame:
    """Paper Table 3 extended: measured rows (from the benchmarks) and the paper's rows, with derived columns.

    ``vs_requirement`` = throughput / 10⁶; ``ns_per_inference`` = 10⁹ / throughput; for measured CPU rows ``gflops``
    (throughput × the row's ``flops``, :func:`mlp_flops`; 4,544, model B's, where a row has none) and, for fp32 rows,
    ``fp32_peak_fraction`` of the FP32 peak of the cores the row used (threads × sessions, :func:`cpu_peak`).
    """
    rows = [dict(r) for r in rows]
    if include_paper and not any(r.get("source") == PAPER_SOURCE for r in rows):
        rows += paper_rows()
    frame = pd.DataFrame(rows)
    for column in TABLE3_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    peak = peak or cpu_peak()
    flops = frame["flops"] if "flops" in frame else pd.Series(np.nan, index=frame.index)
    flops = flops.fillna(4544.0)
    frame["vs_requirement"] = frame["throughput_per_s"] / REQUIREMENT
    frame["ns_per_inference"] = 1e9 / frame["throughput_per_s"]
    measured_cpu = (frame["source"] == MEASURED) & frame["backend"].astype(str).str.contains("CPU")
    frame["gflops"] = np.where(measured_cpu, frame["throughput_per_s"] * flops / 1e9, np.nan)
    cores = (frame["threads"].fillna(1) * frame["sessions"].fillna(1)).clip(upper=peak.cores)
    fp32 = frame["precision"] == "fp32"
    frame["fp32_peak_fraction"] = np.where(fp32, frame["gflops"] / (cores * peak.ghz * peak.flops_per_cycle), np.nan)
    extra = [c for c in frame.columns if c not in TABLE3_COLUMNS]
    return frame[[*TABLE3_COLUMNS, *extra]]


def best_row(df: pd.DataFrame, backend_contains: str = "CPU") -> pd.Series:
    """The measured row with the highest throughput (among backends containing ``backend_contains``)."""
    measured = df[(df["source"] == MEASURED) & df["backend"].astype(str).str.contains(backend_contains)]
    if measured.empty:
        raise ValueError(f"no measured rows for a backend containing {backend_contains!r}")
    return measured.loc[measured["throughput_per_s"].idxmax()]


def write_table3(df: pd.DataFrame, csv_path: str | Path) -> Path:
    write_csv(df, csv_path)
    return Path(csv_path)


def throughput_plot(df: pd.DataFrame, png_path: str | Path, *, label: str = "model B") -> Path:
    """Throughput vs batch size per measured configuration (log-log), with the requirement and the paper's best FPGA.

    Solid lines: the optimised graph; dashed: the exported one; dotted: other backends (PyTorch). PNG only.
    """
    from .plots import cms_figure, cms_label, save

    png_path = Path(png_path)
    measured = df[df["source"] == MEASURED].dropna(subset=["batch_size", "throughput_per_s"])
    styles = {"optimised": "-", "exported": "--"}
    with cms_figure(width=17.0, height=8.5) as (fig, (ax,)):
        for i, (config, group) in enumerate(measured.groupby("config", sort=False)):
            group = group.sort_values("batch_size")
            ax.plot(group["batch_size"], group["throughput_per_s"], marker="os^Dv<>ph*"[i % 10], lw=2,
                    ls=styles.get(group["graph"].iloc[0], ":"), color=f"C{i % 10}", label=config)  # fmt: skip
        ax.axhline(REQUIREMENT, color="black", ls="--", lw=1.5, label=r"requirement: $10^6$ / s per scouting board")
        paper = f"paper: MDLA on {PAPER_BEST['device']} (> {PAPER_BEST['throughput_per_s'] / 1e6:.1f} M/s)"
        ax.axhline(PAPER_BEST["throughput_per_s"], color="tab:gray", ls=":", lw=2.5, label=paper)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size [muons per call]")
        ax.set_ylabel("throughput [inferences / s]")
        low = min([REQUIREMENT, *measured["throughput_per_s"]]) if len(measured) else REQUIREMENT
        high = max([PAPER_BEST["throughput_per_s"], *measured["throughput_per_s"]])
        ax.set_ylim(low / 2, high * 3)
        fig.legend(loc="outside right upper", fontsize="x-small", title="median of repeats", title_fontsize="small")
        cms_label(ax, label, simulation=False)
        save(fig, png_path.with_suffix(""), formats=("png",))
    return png_path


# ---------------------------------------------------------------------------------------------------------------
# the stage


def _read_skim(skim_path: str | Path, inputs: Sequence[str]) -> pd.DataFrame:
    columns = [*inputs, "l1_phi", "l1_eta", "l1_pt", "reco_phi", "reco_eta", "reco_pt"]
    return pd.read_parquet(skim_path, columns=list(dict.fromkeys(columns)))


def run_table3(model_path: str | Path, onnx_path: str | Path, skim_path: str | Path, *, csv_path: str | Path,
               png_path: str | Path, precision_csv_path: str | Path, int8_path: str | Path,
               batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, n_rows: int = 1 << 20, repeats: int = 5,
               threads_list: Sequence[int] = (1, 2), optimized_path: str | Path | None = None,
               calibration_rows: int = 20_000, precision_rows: int = 100_000, torch_reference: bool = True,
               progress: Callable[[str], None] = print) -> pd.DataFrame:  # fmt: skip
    """Table 3 on this machine, the throughput plot, the int8 model and its Table-2 cost (the Snakemake stage).

    Measured: the exported graph at every thread count of ``threads_list``, the optimised graph likewise and as
    ``n`` concurrent single-thread sessions (n = the largest thread count, when > 1), the int8 graph with one thread,
    PyTorch eager with one thread, and CUDA / TensorRT when onnxruntime offers them. The int8 model is calibrated
    on the skim's last ``calibration_rows`` rows; its metrics use the first ``precision_rows`` rows.
    """
    from .train import TrainedModel

    t_start = time.perf_counter()
    onnx_path = Path(onnx_path)
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path}: export the model first (l1refit.export.export_onnx)")
    inputs = graph_inputs(onnx_path)
    skim = _read_skim(skim_path, inputs)
    peak = cpu_peak()
    progress(f"[table3] {peak.describe()}")
    progress(f"[table3] graph {onnx_path}: {mlp_flops(onnx_path):,} FLOPs per inference; requirement "
             f"{REQUIREMENT:.0e}/s; {len(skim):,} skim rows")  # fmt: skip
    common = {"batch_sizes": batch_sizes, "n_rows": n_rows, "repeats": repeats, "progress": progress,
              "inputs": random_hw(max(n_rows, max(batch_sizes)), inputs)}  # fmt: skip
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        if optimized_path is None:
            optimized_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="l1refit-opt-"))) / "opt.onnx"
        optimize_onnx(onnx_path, optimized_path)
        progress(f"[table3] optimised inference graph: {optimized_path}")
        notes = quantize_int8(onnx_path, int8_path, skim.iloc[-calibration_rows:])
        progress(f"[table3] int8 model {int8_path}: {notes['method']}, {len(notes['nodes'])} Gemm nodes")
        for threads in threads_list:
            rows += benchmark_onnx(onnx_path, threads=threads, graph="exported", **common)
            rows += benchmark_onnx(optimized_path, threads=threads, graph="optimised", **common)
        most = max(threads_list)
        if most > 1:
            rows += benchmark_onnx(optimized_path, threads=1, sessions=most, graph="optimised", **common)
            rows += benchmark_onnx(onnx_path, threads=1, sessions=most, graph="exported", **common)
        rows += benchmark_onnx(int8_path, threads=1, precision=int8_label(int8_path), graph="exported", **common)
        if torch_reference:
            rows += benchmark_torch(TrainedModel.load(model_path), threads=1, **common)
        accelerators = accelerator_providers()
        if not accelerators:
            progress(f"[table3] no CUDA / TensorRT provider in onnxruntime {ort.__version__} "
                     f"({', '.join(ort.get_available_providers())}): GPU rows skipped")  # fmt: skip
        for provider in accelerators:
            try:
                rows += benchmark_onnx(onnx_path, providers=[provider, "CPUExecutionProvider"], **common)
            except Exception as err:  # a provider that is listed but cannot run is reported, not fatal
                progress(f"[table3] {provider} failed: {type(err).__name__}: {err}")
    df = table3(rows, peak=peak)
    write_table3(df, csv_path)
    throughput_plot(df, png_path)
    best = best_row(df)
    progress(f"[table3] best CPU: {best['config']} at batch {int(best['batch_size'])}: "
             f"{best['throughput_per_s'] / 1e6:.2f} M/s = {best['vs_requirement']:.1f} x requirement, "
             f"{best['gflops']:.1f} GFLOP/s = {100 * best['fp32_peak_fraction']:.1f} % of FP32 peak")  # fmt: skip
    precision = precision_metrics(onnx_path, int8_path, skim, n_rows=precision_rows)
    write_csv(precision, precision_csv_path)
    for _, row in precision.iterrows():
        progress(f"[table3] {row['model']:>3} {row['precision']:<18} " + " ".join(
            f"{c}={row[c]:.4g}" for c in METRIC_COLUMNS))  # fmt: skip
    progress(f"[table3] done in {time.perf_counter() - t_start:.0f} s -> {csv_path}, {png_path}, {precision_csv_path}")
    return df
