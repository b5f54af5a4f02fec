"""Inference benchmark: paper Table 3 on this machine for the trained model B, its int8 version and the FP32 peak.

Exports ``results/models/B/final/model.pt`` to a temporary directory and runs ``l1refit.deploy.table3.run_table3``
on it: the exported graph and the optimised inference graph (scalers folded, physics as Gemms) with 1 and 2
intra-op threads and as 2 concurrent single-thread sessions, the int8 graph (static QDQ, calibrated on zero-bias
skim rows), PyTorch eager, and CUDA / TensorRT when onnxruntime offers them. Then prints the table, the best
configuration and its fraction of the CPU's FP32 peak, where a call's time goes (onnxruntime profiler, per node)
for both graphs, and the Table-2 metrics of the float and int8 models. Throughput is a median of repeats (timings
on shared machines vary by about ±30 %); the measurement rules are in docs/deploy.md. Not a test: it never fails
on a number.

    python benchmarks/bench_inference.py [--batch-sizes 1,256,1024,2048,4096,16384,65536] [--rows 1048576]
                                         [--repeats 5] [--threads 1,2] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from l1refit.analysis.metrics import METRIC_COLUMNS
from l1refit.deploy.flops import cpu_peak, mlp_flops
from l1refit.deploy.onnx_export import export_onnx
from l1refit.deploy.profiling import profile_ops
from l1refit.deploy.table3 import PAPER_BEST, best_row, run_table3
from l1refit.deploy.timing import MEASURED
from l1refit.ml.checkpoint import TrainedModel


def print_table(df: pd.DataFrame) -> None:
    print(f"\n{'configuration':<62} {'batch':>6} {'M inf/s':>8} {'x req':>6} {'ns/inf':>7} {'call us':>9} "
          f"{'p99 us':>9} {'GFLOP/s':>8} {'% peak':>7}")  # fmt: skip
    for _, r in df.iterrows():
        batch = "" if pd.isna(r["batch_size"]) else f"{int(r['batch_size'])}"
        p99 = "" if pd.isna(r["latency_p99_us"]) else f"{r['latency_p99_us']:.1f}"
        gflops = "" if pd.isna(r["gflops"]) else f"{r['gflops']:.1f}"
        peak = "" if pd.isna(r["fp32_peak_fraction"]) else f"{100 * r['fp32_peak_fraction']:.1f}"
        rate = f"{r['throughput_per_s'] / 1e6:>8.2f} {r['vs_requirement']:>6.1f} {r['ns_per_inference']:>7.1f}"
        print(f"{r['config']:<62} {batch:>6} {rate} {r['latency_median_us']:>9.2f} {p99:>9} {gflops:>8} {peak:>7}")


def print_profile(path: Path, batch_size: int, title: str) -> None:
    ops, run_us = profile_ops(path, batch_size=batch_size, threads=1, calls=300)
    by_type = ops.groupby("op_type")["us_per_call"].agg(["sum", "count"]).sort_values("sum", ascending=False)
    kernel = ops["us_per_call"].sum()
    print(f"\n{title}: batch {batch_size}, 1 thread: model_run {run_us:.0f} us per call "
          f"({batch_size / run_us:.2f} M/s), kernels {kernel:.0f} us, {len(ops)} nodes")  # fmt: skip
    for op_type, row in by_type.iterrows():
        print(f"  {op_type:<18} {int(row['count']):>3} nodes {row['sum']:8.1f} us  {100 * row['sum'] / kernel:5.1f} %")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="results/models/B/final/model.pt")
    parser.add_argument("--skim", default="results/skims/zerobias.parquet")
    parser.add_argument("--batch-sizes", default="1,256,1024,2048,4096,16384,65536")
    parser.add_argument("--rows", type=int, default=1 << 20, help="rows per repeat (and of pre-generated inputs)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts")
    parser.add_argument("--out-dir", help="keep the table, plot, int8 and optimised graphs here (default: temporary)")
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        out = Path(args.out_dir or tmp)
        onnx_path = out / "B.onnx"
        export_onnx(TrainedModel.load(args.model), onnx_path, "B")
        df = run_table3(
            args.model, onnx_path, args.skim, csv_path=out / "table3.csv", png_path=out / "table3_throughput.png",
            precision_csv_path=out / "table3_precision.csv", int8_path=out / "B_int8.onnx",
            optimized_path=out / "B_opt.onnx", batch_sizes=batch_sizes, n_rows=args.rows, repeats=args.repeats,
            threads_list=threads,
        )  # fmt: skip
        print_table(df)
        best = best_row(df)
        peak = cpu_peak()
        print(f"\nFP32 peak: {peak.describe()}")
        print(f"best CPU configuration: {best['config']}, batch {int(best['batch_size'])}: "
              f"{best['throughput_per_s'] / 1e6:.2f} M inferences/s (repeats {best['throughput_min_per_s'] / 1e6:.2f}-"
              f"{best['throughput_max_per_s'] / 1e6:.2f}; {best['vs_requirement']:.1f} x the 10^6/s "
              f"requirement, {best['throughput_per_s'] / PAPER_BEST['throughput_per_s']:.1f} x the paper's "
              f"best FPGA figure); {best['gflops']:.1f} GFLOP/s at {mlp_flops(onnx_path):,} FLOPs/inference = "
              f"{100 * best['fp32_peak_fraction']:.1f} % of the FP32 peak of {int(best['threads'] * best['sessions'])} "
              "core(s)")  # fmt: skip
        one = df[(df["batch_size"] == 1) & (df["source"] == MEASURED)]
        fastest = one.loc[one["latency_median_us"].idxmin()]
        print(f"lowest batch-1 latency: {fastest['config']}: median {fastest['latency_median_us']:.1f} us, "
              f"p99 {fastest['latency_p99_us']:.1f} us")  # fmt: skip
        batch = int(best["batch_size"])
        print_profile(onnx_path, batch, "exported graph")
        print_profile(out / "B_opt.onnx", batch, "optimised graph")
        precision = pd.read_csv(out / "table3_precision.csv")
        print(f"\nTable-2 metrics, float vs int8 (first {int(precision['n_rows'].iloc[0]):,} zero-bias skim rows):")
        print(precision[["model", "precision", *METRIC_COLUMNS]].to_string(index=False, float_format="%.4g"))
        print(precision[["precision", *[c for c in precision if "vs_fp32" in c]]].iloc[1:].to_string(
            index=False, float_format="%.3g"))  # fmt: skip
        if args.out_dir:
            print(f"\nwritten: {', '.join(sorted(p.name for p in out.iterdir()))} in {out}")


if __name__ == "__main__":
    main()
