"""Refit benchmark: muons/s of ``l1refit.deploy.refit.refit_file`` on a skim-like Parquet of >= 10 M muons, peak RSS.

The input is written in batches of vectorised random hardware integers (skim columns and dtypes), so making it needs
bounded memory too. The model is the paper's MLP (3 x 32) trained for 1 epoch on a small toy sample and exported
with ``l1refit.deploy.onnx_export.export_onnx``; its weights do not change the cost. The refit runs in a child
process, so its ``ru_maxrss`` excludes the writer and torch, with one thread everywhere; the RSS after the imports is
printed beside the peak, to show what the streaming itself adds. The child is pinned to core 0 where ``taskset``
exists. ``bench_refit_run3.py`` reuses this scaffold. Not a test: it never fails.

    python benchmarks/bench_refit.py [--muons 10000000] [--chunk-size 250000] [--threads 1] [--keep FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "ARROW_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from l1refit import scales  # noqa: E402
from l1refit.deploy.refit import DEFAULT_CHUNK_SIZE  # noqa: E402

TARGET_RSS = 1.5 * 2**30  # bytes
WRITE_BATCH = 1_000_000  # muons per written batch (and row group)


def skim_batch(n: int, first: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` skim-like rows: identity, hardware integers over the barrel ranges, the L1 floats from them (CMSSW)."""
    hw_pt = np.minimum(1 + rng.exponential(30.0, n), 511).astype(np.int16)
    hw_eta = rng.integers(-76, 77, n).astype(np.int16)
    hw_phi = rng.integers(0, 576, n).astype(np.int16)
    return {
        "run": np.full(n, 325000, np.uint32),
        "lumi": (1 + (first + np.arange(n)) // 100_000).astype(np.uint32),
        "event": ((first + np.arange(n)) // 2).astype(np.uint64),
        "l1_index": ((first + np.arange(n)) % 2).astype(np.uint8),
        "hwPhiAtVtx": hw_phi, "hwEtaAtVtx": hw_eta, "hwPt": hw_pt,
        "charge": rng.choice(np.array([-1, 1], np.int8), n),
        "hwQual": np.full(n, 12, np.uint8), "tfMuonIndex": rng.integers(36, 72, n).astype(np.uint8),
        "l1_pt": scales.hw_to_pt(hw_pt).astype(np.float32),
        "l1_eta": scales.hw_to_eta(hw_eta).astype(np.float32),
        "l1_phi": scales.hw_to_phi(hw_phi).astype(np.float32),
    }  # fmt: skip


def write_input(path: Path, n_muons: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, pa.table(skim_batch(1, 0, rng)).schema, compression="snappy") as writer:
        for first in range(0, n_muons, WRITE_BATCH):
            writer.write_table(pa.table(skim_batch(min(WRITE_BATCH, n_muons - first), first, rng)))


def export_model(path: Path) -> None:
    """The paper's MLP trained 1 epoch on 20 k toy rows (offline values near the L1 ones), exported to ONNX."""
    import pandas as pd

    from l1refit.deploy.onnx_export import export_onnx
    from l1refit.ml.spec import ModelSpec
    from l1refit.ml.training import train

    rng = np.random.default_rng(3)
    df = pd.DataFrame(skim_batch(20_000, 0, rng))
    df["reco_pt"] = df["l1_pt"] * rng.lognormal(-0.1, 0.2, len(df))
    df["reco_eta"] = df["l1_eta"] + rng.normal(0, 0.02, len(df))
    df["reco_phi"] = scales.delta_phi(df["l1_phi"], 0.3 * df["charge"] / df["l1_pt"].clip(lower=1.0))
    spec = ModelSpec("logcosh", "adam", None, "relu", "linear")
    model, _ = train(df, spec, epochs=1, batch_size=1024, patience=1, validation_fraction=0.2, seed=7,
                     progress=lambda line: None)  # fmt: skip
    export_onnx(model, path, "bench")


def _rss_now() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def run_refit(model: str, path: str, chunk_size: int, threads: int, output: str = "refit.parquet") -> dict:
    """In the child: one refit into ``output`` (a name), timed; return its counts, the RSS after the imports and
    the peak RSS."""
    import resource

    from l1refit import logs
    from l1refit.deploy.refit import refit_file

    logs.configure(sys.stderr)  # the refit's per-chunk log lines
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    baseline = _rss_now()
    with tempfile.TemporaryDirectory() as out:
        cpu0 = time.process_time()
        counts = refit_file(model, path, Path(out) / output, chunk_size=chunk_size, threads=threads)
        counts["cpu_seconds"] = time.process_time() - cpu0
        counts["output_bytes"] = (Path(out) / output).stat().st_size
    counts["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    counts["baseline_rss"] = baseline
    return counts


def refit_in_child(model: Path, path: Path, chunk_size: int, threads: int, output: str = "refit.parquet") -> dict:
    """:func:`run_refit` in a fresh process (so its peak RSS is the refit's alone), pinned to core 0 where
    ``taskset`` exists; exits with the child's stderr if the refit fails."""
    command = [sys.executable, __file__, "--child", str(model), str(path), "--chunk-size", str(chunk_size),
               "--threads", str(threads), "--output", output]  # fmt: skip
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"refit failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--muons", type=int, default=10_000_000)
    parser.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="rows per chunk (refit --chunk-size)"
    )
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--keep", type=Path, help="write (or reuse) the input here instead of a temporary dir")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--output", default="refit.parquet", help=argparse.SUPPRESS)  # the child's output name
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_refit(*args.child, args.chunk_size, args.threads, args.output)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "skim.parquet"
        if not path.exists():
            t0 = time.perf_counter()
            write_input(path, args.muons)
            os.sync()  # flush the new file now, so that its write-back does not slow the timed reading
            print(f"wrote {args.muons:,} muons to {path} ({path.stat().st_size / 1e6:.0f} MB) "
                  f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        model = Path(tmp) / "model.onnx"
        export_model(model)
        result = refit_in_child(model, path, args.chunk_size, args.threads)
    report(result, args.chunk_size, args.threads)


def report(result: dict, chunk_size: int, threads: int, unit: str = "rows") -> None:
    """Print muons/s, CPU time, output size and the peak RSS of one :func:`refit_in_child` result."""
    muons, seconds = result["muons"], result["seconds"]
    print(f"refit of {muons:,} muons in {result['chunks']} chunks of {chunk_size:,} {unit}, "
          f"{threads} onnxruntime thread(s): {seconds:.2f} s wall, {result['cpu_seconds']:.2f} s CPU, "
          f"{muons / seconds / 1e6:.2f} M muons/s")  # fmt: skip
    print(f"output {result['output_bytes'] / 1e6:.0f} MB")
    rss, baseline = result["rss"], result["baseline_rss"]
    print(f"peak RSS of the refit process: {rss / 2**30:.2f} GiB  (target < {TARGET_RSS / 2**30:.1f}); "
          f"after the imports, before reading: {baseline / 2**30:.2f} GiB")  # fmt: skip


if __name__ == "__main__":
    main()
