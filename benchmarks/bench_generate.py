"""Generation speed of the synthetic detector on one core (target: >= 1 M muons/s).

Prints, as medians over repeats: the per-muon detector chain alone, whole ZeroBias/MuOnia events (chain plus
event building, fakes, BX copies), and complete L1Ntuple files written with uproot (LZ4).

    python benchmarks/bench_generate.py [--muons 2000000] [--events 400000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402
from timing import median_seconds  # noqa: E402

from l1refit.config.loading import defaults  # noqa: E402
from l1refit.simulate import events, ugmt  # noqa: E402
from l1refit.simulate.chain import simulate_muons, zerobias_truth  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--muons", type=int, default=2_000_000)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gen = defaults("generator")
    t0 = time.perf_counter()
    luts = ugmt.build_luts(gen)
    print(f"uGMT LUT build ({gen['ugmt']['lut_samples']} gun muons): {time.perf_counter() - t0:.2f} s (once per job)")

    rng = np.random.default_rng(1)

    def chain():
        simulate_muons(rng, zerobias_truth(rng, args.muons, gen), gen, luts)

    seconds = median_seconds(chain, args.repeats)
    print(f"detector chain:            {args.muons / seconds / 1e6:6.2f} M muons/s  (target >= 1)")

    for population, make in events.POPULATIONS.items():
        block = min(events.BLOCK, args.events)
        sample = make(np.random.default_rng(2), block, gen, luts)
        n_mu = int(ak.sum(ak.num(sample.Muon)))

        def build(make=make, block=block):
            make(np.random.default_rng(2), block, gen, luts)

        seconds = median_seconds(build, args.repeats)
        rate = f"{n_mu / seconds / 1e6:6.2f} M muons/s  ({block / seconds / 1e3:.0f} k events/s)"
        print(f"{population:9s} events:          {rate}")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.root"

            def write(path=path, population=population):
                events.generate_file(path, population, args.events, seed=1, part=0, gen=gen, luts=luts)

            seconds = median_seconds(write, args.repeats)
            mu_per_event = n_mu / block
            print(
                f"{population:9s} ROOT files:      {args.events * mu_per_event / seconds / 1e6:6.2f} M muons/s  "
                f"({args.events / seconds / 1e3:.0f} k events/s, {path.stat().st_size / 1e6:.0f} MB)"
            )


if __name__ == "__main__":
    main()
