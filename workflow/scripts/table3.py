"""Snakemake adapter: the analysis model's ONNX graph -> results/tables/table3.csv, throughput plot, int8 model."""

import sys

from l1refit.bench import run_table3

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

bench = snakemake.params.benchmark  # noqa: F821
run_table3(
    snakemake.input.model,  # noqa: F821
    snakemake.input.onnx,  # noqa: F821
    snakemake.input.skim,  # noqa: F821
    csv_path=snakemake.output.csv,  # noqa: F821
    png_path=snakemake.output.png,  # noqa: F821
    precision_csv_path=snakemake.output.precision,  # noqa: F821
    int8_path=snakemake.output.int8,  # noqa: F821
    optimized_path=snakemake.output.optimised,  # noqa: F821
    batch_sizes=bench["batch_sizes"],
    n_rows=bench["rows"],
    repeats=bench["repeats"],
    threads_list=[t for t in bench["threads"] if t <= snakemake.threads] or [1],  # noqa: F821
    precision_rows=bench["precision_rows"],
)
