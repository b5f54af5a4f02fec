"""The machine's FP32 roofline, measured: a large single-precision matrix multiply (SGEMM) on one core and on all.

Table 3 divides every CPU row's GFLOP/s by this figure for the cores the row used (``roofline_fraction``). A
measured SGEMM is what the silicon sustains in practice (clock under load, FMA width, hyperthreads, the hypervisor);
the nominal peak (:func:`l1refit.deploy.flops.cpu_peak`) is given only where the FMA width of the CPU is known.
The two BLAS libraries a user of this project already has are measured, NumPy's (OpenBLAS) and PyTorch's (MKL on
x86), and the faster one is the roofline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

log = logging.getLogger(__name__)

ROOFLINE_BACKEND = "SGEMM roofline"  # the backend of the roofline rows of Table 3
SGEMM_SIZE = 2048  # square matrices: 17 GFLOP per multiply, far beyond every cache


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), as the timing rows count them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _blas_name(library: str) -> str:
    if library == "torch":
        import torch

        config = torch.__config__.show()
        blas = "MKL" if "Math Kernel Library" in config else "OpenBLAS" if "OpenBLAS" in config else "its BLAS"
        return f"PyTorch {torch.__version__.split('+')[0]} ({blas})"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return f"NumPy {np.__version__}"
    inner = f"{blas[0]['internal_api']} {blas[0].get('version', '')} {blas[0].get('architecture') or ''}".strip()
    return f"NumPy {np.__version__} ({inner})"


def _multiply(library: str, size: int):
    """A no-argument call that multiplies two fixed ``size``² FP32 matrices with ``library``'s BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    if library == "numpy":
        out = np.empty_like(a)
        return lambda: np.matmul(a, b, out=out)
    if library == "torch":
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out_t = torch.empty_like(ta)
        return lambda: torch.mm(ta, tb, out=out_t)
    raise ValueError(f"library must be 'numpy' or 'torch', got {library!r}")


def _median_gflops(multiply, size: int, repeats: int, barrier: threading.Barrier | None = None) -> float:
    multiply()  # warm-up: first-touch of the output, BLAS buffers
    if barrier is not None:
        barrier.wait()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        multiply()
        seconds.append(time.perf_counter() - t0)
    return 2.0 * size**3 / statistics.median(seconds) / 1e9


@contextlib.contextmanager
def _blas_threads(library: str, threads: int):
    """``threads`` BLAS threads for ``library`` in this block (process-wide: set it once, not per Python thread)."""
    if library == "torch":
        import torch

        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(old)
    else:
        with threadpool_limits(threads, user_api="blas"):
            yield


def sgemm_gflops(*, threads: int = 1, library: str = "numpy", size: int = SGEMM_SIZE, repeats: int = 5) -> float:
    """GFLOP/s of one ``size``² FP32 matrix multiply with ``threads`` BLAS threads, median of ``repeats`` (after
    one warm-up call). ``library``: ``numpy`` or ``torch``."""
    multiply = _multiply(library, size)
    with _blas_threads(library, threads):
        return _median_gflops(multiply, size, repeats)


def concurrent_sgemm_gflops(processes: int, *, library: str = "numpy", size: int = SGEMM_SIZE,
                            repeats: int = 5) -> float:  # fmt: skip
    """Summed GFLOP/s of ``processes`` concurrent single-thread multiplies (Python threads: BLAS releases the GIL),
    the SGEMM twin of Table 3's "n sessions × 1 thread" rows."""
    calls = [_multiply(library, size) for _ in range(processes)]
    results = [0.0] * processes
    barrier = threading.Barrier(processes)

    def work(k: int) -> None:
        results[k] = _median_gflops(calls[k], size, repeats, barrier)

    with _blas_threads(library, 1):
        workers = [threading.Thread(target=work, args=(k,)) for k in range(processes)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return sum(results)


@dataclass(frozen=True)
class Roofline:
    """Measured FP32 SGEMM GFLOP/s on one core and on all ``cores`` of this process, and where it came from."""

    one_core_gflops: float
    all_cores_gflops: float
    cores: int
    library: str
    size: int = SGEMM_SIZE

    def gflops(self, cores: float) -> float:
        """The roofline of ``cores`` cores: the measurement of one core or of all, in between one core's × cores
        (never above all cores')."""
        cores = max(1.0, min(float(cores), float(self.cores)))
        if cores == self.cores:
            return self.all_cores_gflops
        return self.one_core_gflops if cores == 1 else min(self.one_core_gflops * cores, self.all_cores_gflops)

    def describe(self) -> str:
        return (f"measured FP32 roofline ({self.library}, SGEMM {self.size}x{self.size}): "
                f"{self.one_core_gflops:.1f} GFLOP/s on 1 core, {self.all_cores_gflops:.1f} GFLOP/s on "
                f"{self.cores} cores")  # fmt: skip

    def rows(self) -> list[dict]:
        """The two measurements as Table-3 rows (``backend`` ``SGEMM roofline``; :func:`l1refit.deploy.table3.table3`
        marks them measured and fills their fractions)."""
        return [
            {"backend": ROOFLINE_BACKEND, "precision": "fp32", "graph": "n/a", "device": f"{n} core(s)",
             "threads": n, "sessions": 1, "gflops": g, "config": f"{self.library}, SGEMM "
             f"{self.size}x{self.size}, {n} core{'s' if n > 1 else ''}",
             "note": "the machine's FP32 matrix-multiply throughput; CPU rows' roofline_fraction divides by it"}
            for n, g in ((1, self.one_core_gflops), (self.cores, self.all_cores_gflops))
        ]  # fmt: skip


def measure_roofline(*, cores: int | None = None, size: int = SGEMM_SIZE, repeats: int = 5,
                     libraries: tuple[str, ...] = ("numpy", "torch")) -> Roofline:  # fmt: skip
    """Measure the roofline now: per library, one core and all cores (the best of one multi-threaded multiply and
    ``cores`` concurrent single-thread ones); the library with the higher all-core figure is the roofline.
    About 1 s per library and core count at 100 GFLOP/s per core."""
    cores = cores or usable_cores()
    best: Roofline | None = None
    for library in libraries:
        try:
            one = sgemm_gflops(threads=1, library=library, size=size, repeats=repeats)
            every = one
            if cores > 1:
                every = max(sgemm_gflops(threads=cores, library=library, size=size, repeats=repeats),
                            concurrent_sgemm_gflops(cores, library=library, size=size, repeats=repeats))  # fmt: skip
        except ImportError as err:
            log.info("SGEMM with %s skipped: %s", library, err)
            continue
        measured = Roofline(one, every, cores, _blas_name(library), size)
        log.info(measured.describe())
        if best is None or measured.all_cores_gflops > best.all_cores_gflops:
            best = measured
    if best is None:
        raise RuntimeError(f"no BLAS library among {libraries} could be measured")
    return best
