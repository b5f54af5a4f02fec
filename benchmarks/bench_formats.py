"""Format benchmarks: GMT word decode throughput and scouting raw-file read throughput, on one core.

Targets (issue: foundation): decode >= 50 M muon words/s, raw-file read >= 200 MB/s uncompressed.
Prints medians over repeats (timings on shared machines vary by about +-30 %). Not a test: it never fails.

    python benchmarks/bench_formats.py [--words 4000000] [--raw-mb 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the targets are stated
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402
from timing import median_seconds  # noqa: E402

from l1refit.formats import gmt, scouting  # noqa: E402


def bench_decode(n_words: int, repeats: int, chunk: int = 1_000_000) -> None:
    """Decode in 1M-word chunks, as the readers do (whole-array temporaries would measure page faults)."""
    rng = np.random.default_rng(1)
    lsw = rng.integers(0, 2**32, n_words, dtype=np.uint32)
    msw = rng.integers(0, 2**32, n_words, dtype=np.uint32)
    spare = rng.integers(0, 2**32, n_words, dtype=np.uint32)
    for era in gmt.ERAS:

        def run(era=era):
            for start in range(0, n_words, chunk):
                sl = slice(start, start + chunk)
                gmt.decode(lsw[sl], msw[sl], era, spare[sl] if era == "run3" else None)

        run()  # warm-up
        seconds = median_seconds(run, repeats)
        print(f"gmt.decode {era}: {n_words / seconds / 1e6:7.1f} M muon words/s  (target >= 50)")


def _records(n_bx: int, rng) -> ak.Array:
    """Realistic BX records: 1-4 muons each, random hardware fields, slots alternating."""
    counts = rng.integers(1, 5, n_bx)
    n = int(counts.sum())
    fields = {
        "hwPt": rng.integers(2, 512, n), "hwQual": rng.integers(1, 16, n), "hwEta": rng.integers(-230, 231, n),
        "hwPhi": rng.integers(0, 576, n), "hwEtaAtVtx": rng.integers(-230, 231, n),
        "hwPhiAtVtx": rng.integers(0, 576, n), "charge": rng.choice([-1, 1], n), "hwIso": rng.integers(0, 4, n),
        "tfMuonIndex": rng.integers(36, 72, n), "hwPtUnconstrained": rng.integers(0, 256, n),
        "hwDXY": rng.integers(0, 4, n),
    }  # fmt: skip
    rank = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    fields["chargeValid"] = np.ones(n, bool)
    fields["slot"] = (1 + rank % 2).astype(np.int8)
    orbit = np.repeat(np.arange(n_bx // 8 + 1), 8)[:n_bx] + 1
    return ak.zip(
        {"run": np.full(n_bx, 1), "orbit": orbit, "bx": rng.integers(1, 3565, n_bx),
         "muons": ak.unflatten(ak.zip(fields), counts)},
        depth_limit=1,
    )  # fmt: skip


def bench_raw(target_mb: int, repeats: int) -> None:
    rng = np.random.default_rng(2)
    n_bx = int(target_mb * 1e6 / (12 + 2.5 * 8))  # bytes per Run-2 record with 2.5 muons on average
    records = _records(n_bx, rng)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, name, writer in (
            ("scouting-run2", "scout_000001_000000.dat", scouting.write_run2),
            ("scouting-run3", "run3.raw", lambda p, r: scouting.write_run3(p, r, run=1, lumi=1)),
        ):
            path = Path(tmp) / name
            writer(path, records)
            size_mb = path.stat().st_size / 1e6

            def read_all(path=path, fmt=fmt):
                n = 0
                for chunk in scouting.iterate(path, fmt):
                    n += len(chunk)
                return n

            read_all()  # warm-up: page cache and numba compile
            seconds = median_seconds(read_all, repeats)
            n_mu = int(ak.sum(ak.num(records.muons)))
            print(
                f"scouting.iterate {fmt}: {size_mb / seconds:7.1f} MB/s  ({size_mb:.0f} MB, {n_bx / 1e6:.1f} M BX, "
                f"{n_mu / seconds / 1e6:.1f} M muons/s; target >= 200 MB/s)"
            )
            path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=4_000_000, help="muon words to decode")
    parser.add_argument("--raw-mb", type=int, default=200, help="size of the raw test files in MB")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (the median is printed)")
    args = parser.parse_args()
    print(f"l1refit format benchmarks (1 core; medians of {args.repeats})")
    bench_decode(args.words, args.repeats)
    bench_raw(args.raw_mb, args.repeats)


if __name__ == "__main__":
    main()
