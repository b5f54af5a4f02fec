"""Inference benchmark: paper Table 3 on this machine for model B, its int8 version, and the measured SGEMM roofline.

Exports ``results/models/B/final/model.pt`` to a temporary directory and runs ``l1refit.deploy.table3.run_table3``
on it: the exported graph and the optimised inference graph (scalers folded, physics as Gemms) with 1 and 2
intra-op threads and as 2 concurrent single-thread sessions, the int8 graph (static QDQ, calibrated on zero-bias
skim rows), PyTorch eager, and CUDA / TensorRT when onnxruntime offers them. Then prints the table, the best
configuration and its fraction of the measured SGEMM roofline (one core and all cores, NumPy/OpenBLAS
and PyTorch/MKL, the faster), where a call's time goes (onnxruntime profiler, per node)
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
from l1refit.deploy.roofline import ROOFLINE_BACKEND
from l1refit.deploy.table3 import PAPER_BEST, best_row, run_table3
from l1refit.deploy.timing import MEASURED
from l1refit.ml.checkpoint import TrainedModel


def print_table(df: pd.DataFrame) -> None:
    print(f"\n{'configuration':<62} {'batch':>6} {'M inf/s':>8} {'x req':>6} {'ns/inf':>7} {'call us':>9} "
          f"{'p99 us':>9} {'GFLOP/s':>8} {'% roof':>7} {'% nom.':>7}")  # fmt: skip
    for _, r in df.iterrows():
        batch = "" if pd.isna(r["batch_size"]) else f"{int(r['batch_size'])}"
        p99 = "" if pd.isna(r["latency_p99_us"]) else f"{r['latency_p99_us']:.1f}"
        gflops = "" if pd.isna(r["gflops"]) else f"{r['gflops']:.1f}"
        roof = "" if pd.isna(r["roofline_fraction"]) else f"{100 * r['roofline_fraction']:.1f}"
        peak = "" if pd.isna(r["fp32_peak_fraction"]) else f"{100 * r['fp32_peak_fraction']:.1f}"
        if pd.isna(r["throughput_per_s"]):
            rate, latency = f"{'':>8} {'':>6} {'':>7}", f"{'':>9}"
        else:
            rate = f"{r['throughput_per_s'] / 1e6:>8.2f} {r['vs_requirement']:>6.1f} {r['ns_per_inference']:>7.1f}"
            latency = f"{r['latency_median_us']:>9.2f}"
        print(f"{r['config']:<62} {batch:>6} {rate} {latency} {p99:>9} {gflops:>8} {roof:>7} {peak:>7}")


def print_roofline_fractions(df: pd.DataFrame) -> None:
    """Per configuration, its best fp32 row at batch >= 4096 as a fraction of the roofline of the cores it used."""
    rows = df[(df["source"] == MEASURED) & (df["batch_size"] >= 4096) & df["roofline_fraction"].notna()]
    print("\nbest batch >= 4096 per fp32 configuration, fraction of the measured SGEMM roofline of its cores:")
    for config, group in rows.groupby("config", sort=False):
        r = group.loc[group["roofline_fraction"].idxmax()]
        print(f"  {config:<62} batch {int(r['batch_size']):>6}: {r['gflops']:6.1f} of {r['roofline_gflops']:6.1f} "
              f"GFLOP/s = {100 * r['roofline_fraction']:5.1f} %")  # fmt: skip


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
        print_roofline_fractions(df)
        best = best_row(df)
        sgemm = df[df["backend"] == ROOFLINE_BACKEND]
        measured = [f"{c}: {g:.1f} GFLOP/s" for c, g in zip(sgemm["config"], sgemm["gflops"], strict=True)]
        print(f"\nSGEMM roofline: {'; '.join(measured)}")
        print(f"nominal FP32 peak: {cpu_peak().describe()}")
        print(f"best CPU configuration: {best['config']}, batch {int(best['batch_size'])}: "
              f"{best['throughput_per_s'] / 1e6:.2f} M inferences/s (repeats {best['throughput_min_per_s'] / 1e6:.2f}-"
              f"{best['throughput_max_per_s'] / 1e6:.2f}; {best['vs_requirement']:.1f} x the 10^6/s "
              f"requirement, {best['throughput_per_s'] / PAPER_BEST['throughput_per_s']:.1f} x the paper's "
              f"best FPGA figure); {best['gflops']:.1f} GFLOP/s at {mlp_flops(onnx_path):,} FLOPs/inference = "
              f"{100 * best['roofline_fraction']:.1f} % of the measured SGEMM roofline of "
              f"{int(best['threads'] * best['sessions'])} core(s)")  # fmt: skip
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
