"""Refit benchmark on the Run-3 inputs: muons/s of ``refit_file`` on one core and its peak RSS, >= 10 M muons.

For each input format (L1 scouting NanoAOD; NanoAOD) and each ROOT compression, the input is written once, chunk by
chunk (bounded memory), with the hardware values of ``bench_refit.skim_batch``; then ``refit_file`` runs in a child
process pinned to core 0, one thread everywhere, into Parquet and into a friend tree (``.root``), with the exported
graph and with ``optimize_onnx``'s equivalent one (docs/deploy.md §3). The scaffold (model export, child process,
report) is ``bench_refit.py``'s. Compressions: CMS writes NanoAOD with LZMA level 9
(``NanoAODEDMEventContent_cff.py``; the L1 scouting NanoAOD customisation copies it); LZMA:1 stands in for it, as
LZMA decompresses at about the same speed whatever the level and level 9 takes minutes to write here; LZ4 and ZLIB
are the other common ROOT settings. Not a test: it never fails.

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
import numpy as np
import uproot

from l1refit.deploy.optimize import optimize_onnx
from l1refit.deploy.refit import DEFAULT_CHUNK_SIZE
from l1refit.formats import l1scouting_write

OUTPUTS = {"parquet": "refit.parquet", "friend": "refit.root"}
MUONS_PER_BX = ([1, 2, 3, 4], [0.7, 0.2, 0.07, 0.03])  # muons in a BX that has any (L1 scouting NanoAOD)
L1MU_PER_EVENT = ([0, 1, 2, 3, 4], [0.55, 0.25, 0.12, 0.05, 0.03])  # L1Mu per NanoAOD event (BX -2..2)


def _muons(n: int, first: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` muons' hardware integers (bench_refit.skim_batch, plus the station values and the scouting extras)."""
    skim = bench_refit.skim_batch(n, first, rng)
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


def write_scouting_nano(path: Path, n_muons: int, compression, seed: int = 7) -> None:
    """An L1 scouting NanoAOD of ``n_muons`` muons: one entry per BX with muons, eight such BXs an orbit."""
    rng = np.random.default_rng(seed)
    with l1scouting_write.NanoWriter(path, compression=compression) as writer:
        while writer.n_muons < n_muons:
            n = min(bench_refit.WRITE_BATCH, n_muons - writer.n_muons)
            counts = _counts(n, MUONS_PER_BX, rng)
            index = writer.n_entries + np.arange(len(counts))
            entries = {"run": np.full(len(counts), 386000), "lumi": 1 + index // 2_000_000, "orbit": 1 + index // 8,
                       "bx": 1 + index % 8 * 445}  # fmt: skip
            writer.extend(entries, _muons(n, writer.n_muons, rng), counts)


def write_nanoaod(path: Path, n_muons: int, compression, seed: int = 7) -> None:
    """A central-flavour NanoAOD (12-bit floats, no hw branches) of ``n_muons`` L1 muons, many events without any.

    Every muon passes the central table's cut (hwPt >= 7, hwQual 12), so the file holds exactly ``n_muons``.
    """
    import awkward as ak

    from l1refit.formats import nanoaod

    rng = np.random.default_rng(seed)
    written = n_events = 0
    with nanoaod.Writer(path, compression=compression) as writer:
        while written < n_muons:
            n = min(bench_refit.WRITE_BATCH, n_muons - written)
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


WRITERS = {"l1scouting-nano": write_scouting_nano, "nanoaod": write_nanoaod}


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
        models = {"exported": Path(tmp) / "model.onnx", "optimized": Path(tmp) / "model_optimized.onnx"}
        bench_refit.export_model(models["exported"])
        optimize_onnx(models["exported"], models["optimized"])
        for fmt in args.formats.split(","):
            for compression in args.compression.split(","):
                path = folder / f"{fmt}_{args.muons}_{compression.replace(':', '')}.root"
                if not path.exists():
                    t0 = time.perf_counter()
                    WRITERS[fmt](path, args.muons, _compression(compression))
                    os.sync()  # flush the new file now, so that its write-back does not slow the timed reading
                    print(f"wrote {args.muons:,} muons as {fmt} ({compression}) to {path} "
                          f"({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")  # fmt: skip
                for output, graph in itertools.product(args.outputs.split(","), args.graphs.split(",")):
                    print(f"== {fmt}, {compression}, output {output}, {graph} graph")
                    result = bench_refit.refit_in_child(
                        models[graph], path, args.chunk_size, args.threads, OUTPUTS[output]
                    )
                    bench_refit.report(result, args.chunk_size, args.threads, unit="entries")


if __name__ == "__main__":
    main()
