"""Refit benchmark on the Run-3 inputs: muons/s of ``refit_file`` on one core and its peak RSS, >= 10 M muons.

For each input format (L1 scouting NanoAOD; NanoAOD) and each ROOT compression, the input is written once, chunk by
chunk (bounded memory), with the hardware values of ``bench_refit.skim_batch``; then ``refit_file`` runs in a child
process pinned to core 0, one thread everywhere, into Parquet and into a friend tree (``.root``), with the exported
graph and with ``optimize_onnx``'s equivalent one (docs/deploy.md §3; the refit's default). The scaffold (model
export, child process, report, input writers) is ``bench_refit.py``'s. Compressions: CMS writes NanoAOD with LZMA
level 9 (``NanoAODEDMEventContent_cff.py``; the L1 scouting NanoAOD customisation copies it); LZMA:1 stands in for
it, as LZMA decompresses at about the same speed whatever the level and level 9 takes minutes to write here; LZ4 and
ZLIB are the other common ROOT settings. Not a test: it never fails.

    python benchmarks/bench_refit_run3.py [--muons 10000000] [--formats l1scouting-nano,nanoaod]
        [--compression LZ4:4,LZMA:1] [--outputs parquet,friend] [--graphs exported,optimized]
        [--chunk-size 250000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import bench_refit  # noqa: E402  (benchmarks/ is on sys.path when this script runs; it sets one thread everywhere)
import uproot

from l1refit.deploy.refit import DEFAULT_CHUNK_SIZE

OUTPUTS = {"parquet": "refit.parquet", "friend": "refit.root"}
WRITERS = {"l1scouting-nano": bench_refit.write_scouting_nano, "nanoaod": bench_refit.write_nanoaod}


def _compression(text: str):
    name, _, level = text.partition(":")
    return getattr(uproot, name.upper())(int(level or 1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--muons", type=int, default=10_000_000)
    parser.add_argument("--formats", default=",".join(WRITERS), help="input formats, comma-separated")
    parser.add_argument("--compression", default="LZ4:4,LZMA:1", help="ROOT compressions (ALGO:LEVEL), comma-sep.")
    parser.add_argument("--outputs", default=",".join(OUTPUTS), help="parquet, friend (a .root friend tree)")
    parser.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="entries per chunk (refit --chunk-size)"
    )
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--graphs", default="exported,optimized", help="the exported graph and/or optimize_onnx's")
    parser.add_argument("--keep", type=Path, help="write (or reuse) the inputs in this directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        model = Path(tmp) / "model.onnx"
        bench_refit.export_model(model)
        for fmt in args.formats.split(","):
            for compression in args.compression.split(","):
                path = folder / f"{fmt}_{args.muons}_{compression.replace(':', '')}.root"
                if not path.exists():
                    t0 = time.perf_counter()
                    WRITERS[fmt](path, args.muons, compression=_compression(compression))
                    os.sync()  # flush the new file now, so that its write-back does not slow the timed reading
                    print(f"wrote {args.muons:,} muons as {fmt} ({compression}) to {path} "
                          f"({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")  # fmt: skip
                for output, graph in itertools.product(args.outputs.split(","), args.graphs.split(",")):
                    print(f"== {fmt}, {compression}, output {output}, {graph} graph")
                    result = bench_refit.refit_in_child(
                        model, path, args.chunk_size, args.threads, OUTPUTS[output], optimise=graph == "optimized"
                    )
                    bench_refit.report(result, args.chunk_size, args.threads, unit="entries")


if __name__ == "__main__":
    main()
