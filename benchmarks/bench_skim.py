"""Skim benchmark: read + select + match throughput of ``l1refit.skim.files.skim_file`` on one core, and its peak RSS.

Targets (issue 4): >= 1 M L1 muons/s per core, peak RSS < 2 GB on a >= 5 M-event L1Ntuple. The input is a synthetic
L1Ntuple written chunk by chunk with ``l1ntuple.Writer`` (about 1.2 L1 muons and 1 offline muon per event, most L1
muons near an offline one at station 2). The skim runs in a child process, so its ``ru_maxrss`` excludes the writer's
memory, with one thread everywhere. Not a test: it never fails; with ``--profile`` it prints where the time goes.

    python benchmarks/bench_skim.py [--events 5000000] [--step-size 200000] [--repeats 3] [--keep FILE] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "ARROW_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, as the target is stated

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402

from l1refit import scales  # noqa: E402
from l1refit.formats import l1ntuple  # noqa: E402

TARGET_RATE = 1e6  # L1 muons/s
TARGET_RSS = 2 << 30  # bytes
WRITE_CHUNK = 100_000  # events per Writer.extend, i.e. per basket: divides the skim step, as small real baskets do


def _tf_index(eta: np.ndarray, hw_phi: np.ndarray) -> np.ndarray:
    """tfMuonIndex of the track finder that covers eta (BMTF 36-71, OMTF 18-35/72-89, EMTF 0-17/90-107)."""
    wedge = hw_phi // 48
    sector = hw_phi // 96
    barrel = 36 + 3 * wedge
    overlap = np.where(eta < 0, 18, 72) + 3 * sector
    endcap = np.where(eta < 0, 0, 90) + 3 * sector
    abs_eta = np.abs(eta)
    return np.select([abs_eta < 0.83, abs_eta < 1.24], [barrel, overlap], endcap)


def _l1_muons(event: np.ndarray, pt, eta, phi, eta_st2, phi_st2, charge, rng) -> dict[str, np.ndarray]:
    """L1 hardware fields smeared around the given kinematics (pT over-estimated like the uGMT's 90 % point)."""
    n = event.size
    hw_pt = scales.pt_to_hw(np.clip(pt * rng.normal(1.15, 0.15, n), 0.0, 255.0))
    hw_phi = scales.phi_to_hw(phi_st2 + rng.normal(0.0, 0.01, n))
    hw_eta = scales.eta_to_hw(eta_st2 + rng.normal(0.0, 0.01, n))
    return {
        "event": event,
        "hwPt": hw_pt,
        "hwEta": hw_eta,
        "hwPhi": hw_phi,
        "hwEtaAtVtx": scales.eta_to_hw(eta + rng.normal(0.0, 0.02, n)),
        "hwPhiAtVtx": scales.phi_to_hw(phi + rng.normal(0.0, 0.02, n)),
        "charge": charge.astype(np.int16),
        "hwQual": rng.choice(np.array([12, 8, 4], np.uint16), n, p=[0.85, 0.1, 0.05]),
        "tfMuonIndex": _tf_index(eta_st2, hw_phi).astype(np.uint16),
        "bx": rng.choice(np.array([0, -1, 1], np.int16), n, p=[0.95, 0.025, 0.025]),
    }


def _jagged(flat: dict[str, np.ndarray], n_events: int) -> ak.Array:
    order = np.argsort(flat["event"], kind="stable")
    counts = np.bincount(flat["event"], minlength=n_events)
    return ak.unflatten(ak.zip({k: v[order] for k, v in flat.items() if k != "event"}), counts)


def synthetic_events(n: int, first_event: int, rng: np.random.Generator) -> dict:
    """``n`` events in ``l1ntuple.Writer``'s layout: ~1 offline muon and ~1.2 L1 muons per event."""
    n_off = rng.choice(4, n, p=[0.3, 0.45, 0.2, 0.05])
    event = np.repeat(np.arange(n), n_off)
    m = event.size
    pt = np.exp(rng.uniform(np.log(3.0), np.log(60.0), m)).astype(np.float32)
    eta = rng.uniform(-1.2, 1.2, m).astype(np.float32)
    phi = rng.uniform(-np.pi, np.pi, m).astype(np.float32)
    charge = rng.choice(np.array([-1, 1], np.int32), m)
    phi_st2 = scales.wrap_phi(phi - charge * 2.45 / pt).astype(np.float32)
    tier = rng.choice(3, m, p=[0.85, 0.1, 0.05])  # 0 tight, 1 medium only, 2 loose only
    invalid = rng.random(m) < 0.03
    stored_eta_st2 = np.where(invalid, l1ntuple.STATION_INVALID, eta).astype(np.float32)
    stored_phi_st2 = np.where(invalid, l1ntuple.STATION_INVALID, phi_st2).astype(np.float32)
    offline = {
        "event": event, "pt": pt, "eta": eta, "phi": phi, "charge": charge,
        "etaSt2": stored_eta_st2, "phiSt2": stored_phi_st2,
        "isLooseMuon": np.ones(m, bool), "isMediumMuon": tier <= 1, "isTightMuon": tier == 0,
        "iso": rng.exponential(0.08, m).astype(np.float32),
    }  # fmt: skip
    seen = rng.random(m) < 0.97
    from_offline = _l1_muons(event[seen], pt[seen], eta[seen], phi[seen], eta[seen], phi_st2[seen], charge[seen], rng)
    k = rng.poisson(0.22 * n)  # unmatched extras up to |eta| 2.4
    extra_eta = rng.uniform(-2.4, 2.4, k)
    extra_phi = rng.uniform(-np.pi, np.pi, k)
    extras = _l1_muons(
        rng.integers(0, n, k), rng.uniform(2.0, 20.0, k), extra_eta, extra_phi, extra_eta, extra_phi,
        rng.choice(np.array([-1, 1]), k), rng,
    )  # fmt: skip
    l1 = {key: np.concatenate([from_offline[key], extras[key]]) for key in from_offline}
    return {
        "run": np.full(n, 325000, np.uint32),
        "lumi": (1 + (first_event + np.arange(n)) // 10_000).astype(np.uint32),
        "event": (first_event + np.arange(n)).astype(np.uint64),
        "L1Mu": _jagged(l1, n),
        "Muon": _jagged(offline, n),
    }


def write_input(path: Path, n_events: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    with l1ntuple.Writer(path) as writer:
        for start in range(0, n_events, WRITE_CHUNK):
            writer.extend(synthetic_events(min(WRITE_CHUNK, n_events - start), start, rng))


def _watch_anonymous_rss(stop: threading.Event, peak: list[int]) -> None:
    """Poll this process's anonymous RSS (Linux); ru_maxrss also counts the resident pages of the mapped input."""
    while not stop.wait(0.02):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    peak[0] = max(peak[0], int(line.split()[1]) * 1024)


def _read_only(path: str, step_size: int) -> float:
    """Seconds to read the file alone through the same reader and chunking: the skim's floor."""
    t0 = time.perf_counter()
    for _ in l1ntuple.iterate(path, step_size=step_size):
        pass
    return time.perf_counter() - t0


def run_skim(path: str, step_size: int, profile: bool) -> dict:
    """In the child: one skim, timed; return counts, seconds, the reading time alone and the peak RSS."""
    import cProfile
    import pstats
    import resource

    import pyarrow as pa

    from l1refit.skim.files import skim_file
    from l1refit.skim.selection import Selection

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    stop, anonymous = threading.Event(), [0]
    if Path("/proc/self/status").exists():
        threading.Thread(target=_watch_anonymous_rss, args=(stop, anonymous), daemon=True).start()
    with tempfile.TemporaryDirectory() as out, cProfile.Profile() if profile else contextlib.nullcontext() as prof:
        cpu0, t0 = time.process_time(), time.perf_counter()
        cutflow = skim_file(path, "l1ntuple", Selection.from_config(None), Path(out) / "skim.parquet",
                            Path(out) / "cutflow.csv", step_size=step_size)  # fmt: skip
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stop.set()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    if profile:
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    counts = {step: int(n) for step, n in zip(cutflow["step"], cutflow["count"], strict=True)}
    return {
        "seconds": seconds, "cpu_seconds": cpu, "read_seconds": _read_only(path, step_size), "rss": rss,
        "anonymous_rss": anonymous[0], "counts": counts,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--step-size", type=int, default=200_000, help="events per chunk (config io.step_size)")
    parser.add_argument("--keep", type=Path, help="write (or reuse) the input here instead of a temporary dir")
    parser.add_argument("--repeats", type=int, default=3, help="skims (fresh processes); the median is reported")
    parser.add_argument("--profile", action="store_true", help="cProfile the skim and print the top entries")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_skim(args.child, args.step_size, args.profile)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench.root"
        if not path.exists():
            t0 = time.perf_counter()
            write_input(path, args.events)
            os.sync()  # flush the new file now, so that its write-back does not slow the timed reading
            print(f"wrote {args.events:,} events to {path} ({path.stat().st_size / 1e6:.0f} MB) "
                  f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        command = [sys.executable, __file__, "--child", str(path), "--step-size", str(args.step_size)]
        results = []
        for _ in range(1 if args.profile else args.repeats):
            proc = subprocess.run(command + ["--profile"] * args.profile, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"skim failed:\n{proc.stderr}")
            sys.stderr.write(proc.stderr if args.profile else "")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    _report(results, args.profile)


def _report(results: list[dict], profiled: bool) -> None:
    """Print the median run (timings on a shared machine vary by about +-20 %) and the largest RSS."""
    result = sorted(results, key=lambda r: r["seconds"])[len(results) // 2]
    counts = result["counts"]
    n_l1, seconds = counts["l1_all"], result["seconds"]
    rate = n_l1 / seconds
    print(f"{len(results)} run(s), each in a fresh process; the median one:")
    print(f"events {counts['events']:,}  L1 muons {n_l1:,}  offline muons {counts['offline_all']:,}  "
          f"matched pairs {counts['matched_pairs']:,}")  # fmt: skip
    print(f"read+select+match: {seconds:.2f} s wall, {result['cpu_seconds']:.2f} s CPU, "
          f"{rate / 1e6:.2f} M L1 muons/s  (target >= {TARGET_RATE / 1e6:.0f})")  # fmt: skip
    rss, anonymous = max(r["rss"] for r in results), max(r["anonymous_rss"] for r in results)
    print(f"peak RSS of the skim process: {rss / 2**30:.2f} GiB  (target < {TARGET_RSS / 2**30:.0f}); "
          f"of it anonymous (not the memory-mapped input): {anonymous / 2**30:.2f} GiB")  # fmt: skip
    read = result["read_seconds"]
    print(f"of which reading the file (l1ntuple.iterate alone): {read:.2f} s; selection, matching, fake-rate "
          f"matching and writing the Parquet: {seconds - read:.2f} s")  # fmt: skip
    if profiled:
        print("(profiled: cProfile slows the skim down; the profile is above)")
    elif rate < TARGET_RATE:
        print("below the throughput target: rerun with --profile to see where the time goes")


if __name__ == "__main__":
    main()
