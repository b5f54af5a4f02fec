"""Training benchmark: seconds per epoch per million training rows of the paper's MLP, for 1 and 2 threads.

Runs ``l1refit.ml.training.train`` itself (minibatch loop, validation pass, early-stopping bookkeeping) on a
synthetic table of the skim's shape — four hardware-integer inputs, three targets, 3 × 32 hidden units — with the
optimisers of the paper's models (Adam: A, E, F; Adadelta: B, C, D). Each (optimiser, threads) point is a median
over repeats of the per-epoch wall times, because timings on shared machines vary by about ±30 %. Every run happens
in a fresh child process with ``OMP_NUM_THREADS`` set, so the thread pools are sized as in a workflow job.
Not a test: it never fails.

    python benchmarks/bench_train.py [--rows 400000] [--batch-size 1024] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import numpy as np
import pandas as pd

OPTIMIZERS = ("adam", "adadelta")
THREADS = (1, 2)


def synthetic_skim(rows: int, seed: int = 0) -> pd.DataFrame:
    """Random hardware integers in the skim's ranges and physical L1/offline values near them."""
    rng = np.random.default_rng(seed)
    hw_pt = rng.integers(7, 91, rows)
    hw_eta = rng.integers(-80, 82, rows)
    hw_phi = rng.integers(0, 576, rows)
    l1_pt = (hw_pt - 1) * 0.5
    l1_eta = hw_eta * 0.010875
    l1_phi = np.where(hw_phi * 0.010908 > np.pi, hw_phi * 0.010908 - 2 * np.pi, hw_phi * 0.010908)
    return pd.DataFrame({
        "hwPhiAtVtx": hw_phi, "hwEtaAtVtx": hw_eta, "hwPt": hw_pt, "charge": rng.choice([-1, 1], rows),
        "l1_pt": l1_pt, "l1_eta": l1_eta, "l1_phi": l1_phi,
        "reco_pt": l1_pt * rng.lognormal(-0.1, 0.25, rows), "reco_eta": l1_eta + rng.normal(0, 0.03, rows),
        "reco_phi": l1_phi + rng.normal(0, 0.15, rows),
    })  # fmt: skip


def child(optimizer: str, threads: int, rows: int, batch_size: int, epochs: int) -> dict:
    """One training in this process; per-epoch seconds and the number of rows trained on per epoch."""
    from l1refit.ml.spec import ModelSpec
    from l1refit.ml.training import train

    spec = ModelSpec("logcosh", optimizer, None, "relu", "linear")
    _, history = train(synthetic_skim(rows), spec, epochs=epochs, batch_size=batch_size, patience=epochs,
                       validation_fraction=0.1, seed=1, threads=threads, progress=lambda line: None)  # fmt: skip
    return {"seconds": history["seconds"].tolist(), "train_rows": int(rows * 0.9)}


def run_child(optimizer: str, threads: int, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", f"{optimizer},{threads}", "--rows", str(args.rows),
           "--batch-size", str(args.batch_size), "--epochs", str(args.epochs)]  # fmt: skip
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000, help="rows of the synthetic table (90 %% train)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; every epoch is one sample")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point (fresh process each)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        optimizer, threads = args.child.split(",")
        print(json.dumps(child(optimizer, int(threads), args.rows, args.batch_size, args.epochs)))
        return

    print(f"rows {args.rows:,} (train {int(args.rows * 0.9):,}), batch {args.batch_size}, epochs {args.epochs}, "
          f"repeats {args.repeats}; medians of per-epoch times")  # fmt: skip
    print(f"{'optimizer':<10} {'threads':>7} {'s/epoch':>8} {'s/epoch/M':>10} {'min':>7} {'max':>7}")
    for optimizer in OPTIMIZERS:
        for threads in THREADS:
            per_million = []
            for _ in range(args.repeats):
                result = run_child(optimizer, threads, args)
                per_million += [s / result["train_rows"] * 1e6 for s in result["seconds"]]
            median = statistics.median(per_million)
            print(f"{optimizer:<10} {threads:>7} {median * int(args.rows * 0.9) / 1e6:>8.3f} {median:>10.3f} "
                  f"{min(per_million):>7.3f} {max(per_million):>7.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
