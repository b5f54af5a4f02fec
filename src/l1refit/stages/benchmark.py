"""Benchmark stage (workflow/rules/benchmark.smk): paper Table 3 on this machine, and the int8 model's cost."""

from __future__ import annotations

from l1refit.deploy.table3 import run_table3


def table3(*, model: str, onnx: str, skim: str, benchmark: dict, threads: int, csv: str, png: str, precision: str,
           int8: str, optimised: str, fpga_table3: str | None = None) -> None:  # fmt: skip
    """Throughput and latency of the analysis model per configuration (thread counts up to the job's cores) against
    the machine's measured SGEMM roofline, and in the plot the FPGA firmware's estimate when the FPGA stage ran."""
    run_table3(
        model,
        onnx,
        skim,
        csv_path=csv,
        png_path=png,
        precision_csv_path=precision,
        int8_path=int8,
        optimized_path=optimised,
        batch_sizes=benchmark["batch_sizes"],
        n_rows=benchmark["rows"],
        repeats=benchmark["repeats"],
        threads_list=[t for t in benchmark["threads"] if t <= threads] or [1],
        precision_rows=benchmark["precision_rows"],
        fpga_csv_path=fpga_table3,
        sgemm_size=benchmark["sgemm_size"],
    )
