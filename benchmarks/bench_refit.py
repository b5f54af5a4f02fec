"""Refit benchmark: muons/s of ``l1refit refit`` per input format, on one and on two cores, beside the bare inference
rate of the same engine measured in the same process, and the peak RSS.

For each format (Parquet skim, L1Ntuple, Run-2 and Run-3 scouting raw, NanoAOD, L1 scouting NanoAOD) an input of
``--muons`` muons is written once (bounded memory: batches of vectorised random hardware integers; the raw files by
``l1refit convert`` from the L1Ntuple). Each refit (Parquet output) runs in a child process pinned to the first
``n`` cores (``taskset``), one onnxruntime thread: the reader and writer threads (``l1refit.deploy.pipeline``) are
what uses a second core. After the refit, the same child times the engine alone on as many in-memory muons, in
the refit's chunks: "inference" below, and the ratio refit / inference is what holds on a noisy machine. The model
is the paper's MLP (3 x 32) trained for 1 epoch on a toy sample and exported; its weights do not change the cost.
The RSS after the imports is printed beside the peak. ``bench_refit_run3.py`` compares ROOT compressions and
friend-tree outputs with this scaffold. Not a test: it never fails.

    python benchmarks/bench_refit.py [--muons 10000000] [--formats parquet,l1ntuple,...] [--cores 1,2]
                                     [--chunk-size 250000] [--compression snappy] [--kernel] [--keep DIR]
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
    os.environ.setdefault(_var, "1")  # one thread per library: the cores are the refit's pipeline's

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from l1refit import scales  # noqa: E402
from l1refit.deploy.refit import DEFAULT_CHUNK_SIZE, DEFAULT_COMPRESSION  # noqa: E402

TARGET_RSS = 1.5 * 2**30  # bytes
WRITE_BATCH = 1_000_000  # muons per written batch (and row group)
FORMATS = ("parquet", "l1ntuple", "scouting-run2", "scouting-run3", "nanoaod", "l1scouting-nano")
SUFFIX = {"parquet": ".parquet", "scouting-run2": ".dat", "scouting-run3": ".raw"}  # else .root
MUONS_PER_BX = ([1, 2, 3, 4], [0.7, 0.2, 0.07, 0.03])  # muons in a BX that has any (L1 scouting NanoAOD)
L1MU_PER_EVENT = ([0, 1, 2, 3, 4], [0.55, 0.25, 0.12, 0.05, 0.03])  # L1Mu per NanoAOD event (BX -2..2)


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


def _muons(n: int, first: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` muons' hardware integers (:func:`skim_batch`, plus the station values and the scouting extras)."""
    skim = skim_batch(n, first, rng)
    bend = (skim["charge"] * 40 / np.maximum(skim["hwPt"], 2)).astype(np.int16)
    hw_eta = skim["hwEtaAtVtx"] + rng.integers(-2, 3, n).astype(np.int16)
    return {
        "hwPt": skim["hwPt"], "hwEtaAtVtx": skim["hwEtaAtVtx"], "hwPhiAtVtx": skim["hwPhiAtVtx"],
        "hwEta": hw_eta, "hwPhi": (skim["hwPhiAtVtx"] + bend) % 576,
        "hwCharge": skim["charge"].astype(np.int16), "hwQual": skim["hwQual"].astype(np.int16),
        "tfMuonIndex": skim["tfMuonIndex"].astype(np.int16), "hwPtUnconstrained": np.zeros(n, np.int16),
        "hwDXY": np.zeros(n, np.int16),
    }  # fmt: skip


def _counts(n_muons: int, choices, rng: np.random.Generator) -> np.ndarray:
    """Muon counts of consecutive entries that hold ``n_muons`` muons in all (the last one trimmed)."""
    counts = rng.choice(choices[0], int(n_muons / np.dot(*choices)) + 1000, p=choices[1])
    cut = np.searchsorted(np.cumsum(counts), n_muons)
    counts = counts[: cut + 1].copy()
    counts[-1] -= int(counts.sum()) - n_muons
    return counts


def write_parquet(path: Path, n_muons: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, pa.table(skim_batch(1, 0, rng)).schema, compression="snappy") as writer:
        for first in range(0, n_muons, WRITE_BATCH):
            writer.write_table(pa.table(skim_batch(min(WRITE_BATCH, n_muons - first), first, rng)))


def write_l1ntuple(path: Path, n_muons: int, seed: int = 7) -> None:
    """An L1-only L1Ntuple, two muons an event (hardware integers; the writer adds the CMSSW floats)."""
    import awkward as ak

    from l1refit.formats import l1ntuple

    rng = np.random.default_rng(seed)
    with l1ntuple.Writer(path) as writer:
        for first in range(0, n_muons, WRITE_BATCH):
            n = min(WRITE_BATCH, n_muons - first) // 2 * 2
            muons = _muons(n, first, rng)
            muons = {k: v for k, v in muons.items() if k not in ("hwCharge", "hwPtUnconstrained", "hwDXY")}
            muons["charge"] = skim_batch(n, first, rng)["charge"].astype(np.int16)
            m = n // 2
            events = {"run": np.full(m, 325000, np.uint32), "lumi": np.ones(m, np.uint32),
                      "event": (first // 2 + np.arange(m)).astype(np.uint64),
                      "L1Mu": ak.unflatten(ak.zip(muons), np.full(m, 2))}  # fmt: skip
            writer.extend(ak.zip(events, depth_limit=1))


def write_scouting_nano(path: Path, n_muons: int, seed: int = 7, compression=None) -> None:
    """An L1 scouting NanoAOD of ``n_muons`` muons: one entry per BX with muons, eight such BXs an orbit."""
    from l1refit.formats import l1scouting_write

    rng = np.random.default_rng(seed)
    with l1scouting_write.NanoWriter(path, compression=compression) as writer:
        while writer.n_muons < n_muons:
            n = min(WRITE_BATCH, n_muons - writer.n_muons)
            counts = _counts(n, MUONS_PER_BX, rng)
            index = writer.n_entries + np.arange(len(counts))
            entries = {"run": np.full(len(counts), 386000), "lumi": 1 + index // 2_000_000, "orbit": 1 + index // 8,
                       "bx": 1 + index % 8 * 445}  # fmt: skip
            writer.extend(entries, _muons(n, writer.n_muons, rng), counts)


def write_nanoaod(path: Path, n_muons: int, seed: int = 7, compression=None) -> None:
    """A central-flavour NanoAOD (12-bit floats, no hw branches) of ``n_muons`` L1 muons, many events without any.

    Every muon passes the central table's cut (hwPt >= 7, hwQual 12), so the file holds exactly ``n_muons``.
    """
    import awkward as ak

    from l1refit.formats import nanoaod

    rng = np.random.default_rng(seed)
    written = n_events = 0
    with nanoaod.Writer(path, compression=compression) as writer:
        while written < n_muons:
            n = min(WRITE_BATCH, n_muons - written)
            counts = _counts(n, L1MU_PER_EVENT, rng)
            muons = _muons(n, written, rng)
            muons |= {"hwPt": np.maximum(muons["hwPt"], 7), "charge": muons["hwCharge"].astype(np.int8),
                      "bx": rng.choice(np.array([-1, 0, 0, 0, 1], np.int16), n)}  # fmt: skip
            m = len(counts)
            events = {"run": np.full(m, 386000, np.uint32), "lumi": np.ones(m, np.uint32),
                      "event": (n_events + np.arange(m)).astype(np.uint64), "bx": np.full(m, 100, np.uint32),
                      "L1Mu": ak.unflatten(ak.zip(muons), counts)}  # fmt: skip
            writer.extend(ak.zip(events, depth_limit=1))
            written += n
            n_events += m


def write_input(folder: Path, fmt: str, n_muons: int) -> Path:
    """The input of ``fmt`` with ``n_muons`` muons in ``folder`` (reused when it exists)."""
    path = folder / f"{fmt}_{n_muons}{SUFFIX.get(fmt, '.root')}"
    if path.exists():
        return path
    t0 = time.perf_counter()
    if fmt in ("scouting-run2", "scouting-run3"):
        from l1refit.formats.convert import convert

        convert(write_input(folder, "l1ntuple", n_muons), path, to=fmt, run=325000)
    else:
        {"parquet": write_parquet, "l1ntuple": write_l1ntuple, "nanoaod": write_nanoaod,
         "l1scouting-nano": write_scouting_nano}[fmt](path, n_muons)  # fmt: skip
    os.sync()  # flush the new file now, so that its write-back does not slow the timed reading
    print(f"wrote {n_muons:,} muons as {fmt} to {path} ({path.stat().st_size / 1e6:.0f} MB) "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
    return path


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


def _status(field: str) -> int:
    """Bytes of a ``/proc/self/status`` memory field: ``VmRSS`` now, ``VmHWM`` its peak. Not ``ru_maxrss``, which
    Linux carries over ``execve`` from the parent: the child would report the peak of the process that wrote the
    inputs."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(f"{field}:"))


def _inference_rate(model: str, n_muons: int, chunk_size: int, threads: int, optimise: bool,
                    kernel: bool = False) -> float:  # fmt: skip
    """Muons/s of the engine alone (:func:`l1refit.deploy.refit.load_model`, as the refit loads it) on ``n_muons``
    random hardware rows held in memory, in chunks of ``chunk_size``."""
    from l1refit.deploy.hw_inputs import random_hw
    from l1refit.deploy.refit import load_model

    engine = load_model(model, threads=threads, optimise=optimise, kernel=kernel)
    x = random_hw(min(chunk_size, n_muons), engine.inputs, seed=1)
    engine(x)  # warm-up
    calls = max(1, n_muons // len(x))
    t0 = time.perf_counter()
    for _ in range(calls):
        engine(x)
    return calls * len(x) / (time.perf_counter() - t0)


def run_refit(model: str, path: str, chunk_size: int, threads: int, output: str = "refit.parquet",
              compression: str = DEFAULT_COMPRESSION, optimise: bool = True, kernel: bool = False) -> dict:  # fmt: skip
    """In the child: one refit into ``output`` (a name), timed; then the engine alone on as many muons. Returns the
    refit's counts, the inference rate, the RSS after the imports and the peak RSS."""
    from l1refit import logs
    from l1refit.deploy.refit import refit_file

    logs.configure(sys.stderr)  # the refit's per-chunk log lines
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    baseline = _status("VmRSS")
    with tempfile.TemporaryDirectory() as out:
        cpu0 = time.process_time()
        counts = refit_file(model, path, Path(out) / output, chunk_size=chunk_size, threads=threads,
                            compression=compression, optimise=optimise, kernel=kernel)  # fmt: skip
        counts["cpu_seconds"] = time.process_time() - cpu0
        counts["output_bytes"] = (Path(out) / output).stat().st_size
    counts["rss"] = _status("VmHWM")
    counts["baseline_rss"] = baseline
    counts["inference_per_s"] = _inference_rate(model, counts["muons"], chunk_size, threads, optimise, kernel)
    return counts


def refit_in_child(model: Path, path: Path, chunk_size: int, threads: int, output: str = "refit.parquet", *,
                   cores: int = 1, compression: str = DEFAULT_COMPRESSION, optimise: bool = True,
                   kernel: bool = False) -> dict:  # fmt: skip
    """:func:`run_refit` in a fresh process (so its peak RSS is the refit's alone), pinned to the first ``cores``
    cores where ``taskset`` exists; exits with the child's stderr if the refit fails."""
    command = [sys.executable, __file__, "--child", str(model), str(path), "--chunk-size", str(chunk_size),
               "--threads", str(threads), "--output", output, "--compression", compression]  # fmt: skip
    if not optimise:
        command.append("--exported-graph")
    if kernel:
        command.append("--kernel")
    if shutil.which("taskset"):
        command = ["taskset", "-c", ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:cores]), *command]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"refit failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--muons", type=int, default=10_000_000)
    parser.add_argument("--formats", default=",".join(FORMATS), help="input formats, comma-separated")
    parser.add_argument("--cores", default="1,2", help="core counts to pin each refit to, comma-separated")
    parser.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="rows per chunk (refit --chunk-size)"
    )
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--compression", default=DEFAULT_COMPRESSION, help="Parquet output codec")
    parser.add_argument("--exported-graph", action="store_true", help="refit with the graph as exported")
    parser.add_argument("--kernel", action="store_true", help="refit with the compiled kernel (refit --kernel)")
    parser.add_argument("--keep", type=Path, help="write (or reuse) the inputs in this directory")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--output", default="refit.parquet", help=argparse.SUPPRESS)  # the child's output name
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_refit(*args.child, args.chunk_size, args.threads, args.output, args.compression,
                                   not args.exported_graph, args.kernel)))  # fmt: skip
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        model = Path(tmp) / "model.onnx"
        export_model(model)
        results = []
        for fmt in args.formats.split(","):
            path = write_input(folder, fmt, args.muons)
            for cores in (int(c) for c in args.cores.split(",")):
                result = refit_in_child(model, path, args.chunk_size, args.threads, cores=cores,
                                        compression=args.compression, optimise=not args.exported_graph,
                                        kernel=args.kernel)  # fmt: skip
                print(f"== {fmt}, {cores} core(s)")
                report(result, args.chunk_size, args.threads)
                results.append((fmt, cores, result))
    summary(results)


def report(result: dict, chunk_size: int, threads: int, unit: str = "rows") -> None:
    """Print muons/s, its ratio to the engine alone, CPU time, output size and the peak RSS of one result."""
    muons, seconds = result["muons"], result["seconds"]
    engine = {"kernel": "compiled kernel", "onnx": "onnxruntime"}.get(result.get("engine"), result.get("engine", ""))
    print(f"refit of {muons:,} muons in {result['chunks']} chunks of {chunk_size:,} {unit}, {result['graph']} graph, "
          f"{engine}, {threads} thread(s): {seconds:.2f} s wall, {result['cpu_seconds']:.2f} s CPU, "
          f"{muons / seconds / 1e6:.2f} M muons/s")  # fmt: skip
    if "inference_per_s" in result:
        print(f"engine alone, same process: {result['inference_per_s'] / 1e6:.2f} M muons/s; refit / inference = "
              f"{muons / seconds / result['inference_per_s']:.2f}")  # fmt: skip
    print(f"output {result['output_bytes'] / 1e6:.0f} MB")
    rss, baseline = result["rss"], result["baseline_rss"]
    print(f"peak RSS of the refit process: {rss / 2**30:.2f} GiB  (target < {TARGET_RSS / 2**30:.1f}); "
          f"after the imports, before reading: {baseline / 2**30:.2f} GiB", flush=True)  # fmt: skip


def summary(results: list[tuple[str, int, dict]]) -> None:
    """One line per format and core count: refit and inference rates, their ratio, peak RSS."""
    print(f"\n{'format':<16} {'cores':>5} {'refit M/s':>10} {'engine M/s':>11} {'ratio':>6} {'peak RSS GiB':>13}")
    for fmt, cores, r in results:
        rate = r["muons"] / r["seconds"]
        print(f"{fmt:<16} {cores:>5} {rate / 1e6:>10.2f} {r['inference_per_s'] / 1e6:>11.2f} "
              f"{rate / r['inference_per_s']:>6.2f} {r['rss'] / 2**30:>13.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
