"""Paper Table 3 on this machine: the measured rows beside the paper's FPGA rows, the CSV, the throughput plot.

:func:`run_table3` is the ``table3`` stage: it optimises and quantises the exported graph, times every configuration
(:mod:`l1refit.deploy.timing`) and writes the table, the plot and the int8 model's Table-2 metrics. How it measures
and what the columns mean: docs/deploy.md.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

from l1refit.analysis.metrics import METRIC_COLUMNS
from l1refit.deploy.flops import CpuPeak, cpu_peak, mlp_flops
from l1refit.deploy.hw_inputs import random_hw
from l1refit.deploy.metadata import graph_inputs
from l1refit.deploy.optimize import optimize_onnx
from l1refit.deploy.quantize import int8_label, precision_metrics, quantize_int8
from l1refit.deploy.roofline import ROOFLINE_BACKEND, SGEMM_SIZE, Roofline, measure_roofline
from l1refit.deploy.runtime import accelerator_providers
from l1refit.deploy.timing import DEFAULT_BATCH_SIZES, MEASURED, time_native, time_onnx, time_torch
from l1refit.formats.output import write_csv

log = logging.getLogger(__name__)

REQUIREMENT = 1e6  # inferences per second per L1 scouting board (paper §3.5)
PAPER_SOURCE = "paper (published)"

# Paper Table 3: "Scouting neural network (Model B) performance on the MDLA, with the AC-510 and SB-852 FPGA-based
# boards". Throughputs are lower bounds as printed ("> 1 300 400" is the paper's figure, kept as published).
# Precision and batch size are not stated in the paper.
PAPER_TABLE3: tuple[dict, ...] = tuple(
    {
        "board": board,
        "clusters": clusters,
        "latency_ns": latency_ns,
        "throughput_per_s": throughput,
        "throughput_is_lower_bound": True,
        "model": "B",
        "backend": "Micron MDLA (FPGA)",
        "device": f"Micron {board}, {clusters} cluster{'s' if clusters > 1 else ''}",
        "source": PAPER_SOURCE,
    }
    for board, clusters, latency_ns, throughput in (
        ("AC-510", 1, 726, 1_300_400),
        ("AC-510", 2, 364, 2_700_000),
        ("SB-852", 1, 748, 1_300_000),
    )
)
PAPER_BEST = max(PAPER_TABLE3, key=lambda row: row["throughput_per_s"])

TABLE3_COLUMNS = (
    "backend", "precision", "graph", "device", "threads", "sessions", "clusters", "batch_size", "throughput_per_s",
    "ns_per_inference", "latency_median_us", "latency_p99_us", "vs_requirement", "gflops", "roofline_gflops",
    "roofline_fraction", "fp32_peak_fraction", "source", "config", "note",
)  # fmt: skip


def paper_rows() -> list[dict]:
    """Paper Table 3 as rows of :func:`table3` (latency: the paper's time per inference)."""
    rows = []
    for paper in PAPER_TABLE3:
        rows.append({
            "backend": paper["backend"], "precision": "not stated", "graph": "n/a", "device": paper["device"],
            "clusters": paper["clusters"], "throughput_per_s": float(paper["throughput_per_s"]),
            "latency_median_us": paper["latency_ns"] / 1000.0, "source": PAPER_SOURCE,
            "config": f"paper: {paper['device']}",
            "note": f"throughput '> {paper['throughput_per_s']:,}' (lower bound); latency {paper['latency_ns']} ns as "
                    "published; batch size and precision not stated",
        })  # fmt: skip
    return rows


def table3(rows: Iterable[dict], *, include_paper: bool = True, peak: CpuPeak | None = None,
           roofline: Roofline | None = None) -> pd.DataFrame:  # fmt: skip
    """Paper Table 3 extended: measured rows (:mod:`l1refit.deploy.timing`) and the paper's rows, with derived columns.

    ``vs_requirement`` = throughput / 10⁶; ``ns_per_inference`` = 10⁹ / throughput; for measured CPU rows ``gflops``
    (throughput × the row's ``flops``, :func:`mlp_flops`; 4,544, model B's, where a row has none). For fp32 rows:
    ``roofline_fraction`` of the measured SGEMM throughput of the cores the row used (threads × sessions;
    ``roofline``, whose two measurements become rows too) and ``fp32_peak_fraction`` of the nominal peak
    (:func:`cpu_peak`; NaN where the CPU's FMA width is not known).
    """
    rows = [dict(r) for r in rows]
    if roofline is not None:
        rows += [row | {"source": MEASURED} for row in roofline.rows()]
    if include_paper and not any(r.get("source") == PAPER_SOURCE for r in rows):
        rows += paper_rows()
    frame = pd.DataFrame(rows)
    for column in TABLE3_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    peak = peak or cpu_peak()
    flops = frame["flops"] if "flops" in frame else pd.Series(np.nan, index=frame.index)
    flops = flops.fillna(4544.0)
    frame["vs_requirement"] = frame["throughput_per_s"] / REQUIREMENT
    frame["ns_per_inference"] = 1e9 / frame["throughput_per_s"]
    measured_cpu = (frame["source"] == MEASURED) & frame["backend"].astype(str).str.contains("CPU")
    frame["gflops"] = np.where(measured_cpu, frame["throughput_per_s"] * flops / 1e9, frame["gflops"])
    cores = (frame["threads"].fillna(1) * frame["sessions"].fillna(1)).clip(upper=peak.cores)
    fp32 = (frame["precision"] == "fp32") & (frame["source"] == MEASURED)
    frame["fp32_peak_fraction"] = np.where(fp32, frame["gflops"] / cores.map(peak.gflops), np.nan)
    if roofline is not None:
        frame["roofline_gflops"] = np.where(fp32, cores.map(roofline.gflops), np.nan)
        frame["roofline_fraction"] = frame["gflops"] / frame["roofline_gflops"]
    extra = [c for c in frame.columns if c not in TABLE3_COLUMNS]
    return frame[[*TABLE3_COLUMNS, *extra]]


def best_row(df: pd.DataFrame, backend_contains: str = "CPU") -> pd.Series:
    """The measured row with the highest throughput (among backends containing ``backend_contains``)."""
    measured = df[(df["source"] == MEASURED) & df["backend"].astype(str).str.contains(backend_contains)]
    if measured.empty:
        raise ValueError(f"no measured rows for a backend containing {backend_contains!r}")
    return measured.loc[measured["throughput_per_s"].idxmax()]


def write_table3(df: pd.DataFrame, csv_path: str | Path) -> Path:
    write_csv(df, csv_path)
    return Path(csv_path)


def _roofline_rate(df: pd.DataFrame) -> float:
    """Inferences/s the all-core SGEMM roofline allows the measured graph (0 without roofline rows)."""
    sgemm = df[df["backend"] == ROOFLINE_BACKEND]["gflops"]
    flops = df[(df["source"] == MEASURED) & (df["backend"] != ROOFLINE_BACKEND)].get("flops")
    if sgemm.empty or flops is None or flops.dropna().empty:
        return 0.0
    return float(sgemm.max()) * 1e9 / float(flops.dropna().max())


# one colour per measured configuration (the style's cycle repeats a colour before Table 3's ten configurations)
LINE_COLORS = ("tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:gray", "tab:olive", "black", "tab:green",
               "tab:brown", "tab:pink", "tab:cyan", "navy")  # fmt: skip


def throughput_plot(df: pd.DataFrame, png_path: str | Path, *, label: str = "model B",
                    fpga: pd.DataFrame | None = None) -> Path:  # fmt: skip
    """Throughput vs batch size per measured configuration (log-log), with the requirement and the paper's best FPGA.

    Solid lines: the optimised graph; dashed: the exported one; dotted: other backends (PyTorch). With ``fpga``
    (``table3_fpga.csv``), the chosen firmware design's estimated throughput per instance as a line too; the
    all-core SGEMM roofline in inferences/s (its GFLOP/s over the graph's FLOPs per inference) when Table 3 has
    it. PNG only.
    """
    from l1refit.analysis.plots import cms_figure, cms_label, save

    png_path = Path(png_path)
    measured = df[df["source"] == MEASURED].dropna(subset=["batch_size", "throughput_per_s"])
    styles = {"optimised": "-", "exported": "--"}
    with cms_figure(width=17.0, height=8.5) as (fig, (ax,)):
        for i, (config, group) in enumerate(measured.groupby("config", sort=False)):
            group = group.sort_values("batch_size")
            ax.plot(group["batch_size"], group["throughput_per_s"], marker="os^Dv<>ph*"[i % 10], lw=2,
                    ls=styles.get(group["graph"].iloc[0], ":"), color=LINE_COLORS[i % len(LINE_COLORS)],
                    label=config)  # fmt: skip
        ax.axhline(REQUIREMENT, color="black", ls="--", lw=1.5, label=r"requirement: $10^6$ / s per scouting board")
        paper = f"paper: MDLA on {PAPER_BEST['device']} (> {PAPER_BEST['throughput_per_s'] / 1e6:.1f} M/s)"
        ax.axhline(PAPER_BEST["throughput_per_s"], color="tab:gray", ls=":", lw=2.5, label=paper)
        chosen = fpga[fpga["chosen"].astype(bool)] if fpga is not None else fpga
        if chosen is not None and len(chosen):
            firmware = float(chosen["inferences_per_s_estimate"].iloc[0])
            text = f"FPGA firmware, chosen design, 1 instance (estimate: {firmware / 1e6:.0f} M/s)"
            ax.axhline(firmware, color="tab:orange", ls="-.", lw=2.5, label=text)
        else:
            firmware = 0.0
        roofline = _roofline_rate(df)
        if roofline:
            ax.axhline(roofline, color="tab:red", ls=(0, (1, 1)), lw=2,
                       label=f"roofline: all-core SGEMM / FLOPs per inference ({roofline / 1e6:.0f} M/s)")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size [muons per call]")
        ax.set_ylabel("throughput [inferences / s]")
        low = min([REQUIREMENT, *measured["throughput_per_s"]]) if len(measured) else REQUIREMENT
        high = max([PAPER_BEST["throughput_per_s"], firmware, roofline, *measured["throughput_per_s"]])
        ax.set_ylim(low / 2, high * 3)
        fig.legend(loc="outside right upper", fontsize="x-small", title="median of repeats", title_fontsize="small")
        cms_label(ax, label, simulation=False)
        save(fig, png_path.with_suffix(""), formats=("png",))
    return png_path


# ---------------------------------------------------------------------------------------------------------------
# the stage


def _read_skim(skim_path: str | Path, inputs: Sequence[str]) -> pd.DataFrame:
    columns = [*inputs, "l1_phi", "l1_eta", "l1_pt", "reco_phi", "reco_eta", "reco_pt"]
    return pd.read_parquet(skim_path, columns=list(dict.fromkeys(columns)))


def _kernel_rows(optimized_path: Path, most: int, common: dict) -> list[dict]:
    """The compiled kernel on the optimised graph, one caller and ``most`` concurrent ones; none (with the reason
    logged) where it cannot run: no C compiler, or a graph it does not take (relative-pT or non-ReLU models)."""
    from l1refit.deploy.native import NativeKernelError

    try:
        rows = time_native(optimized_path, sessions=1, **common)
        if most > 1:
            rows += time_native(optimized_path, sessions=most, **common)
    except (NativeKernelError, ValueError) as err:
        log.warning(f"compiled kernel rows skipped: {err}")
        return []
    return rows


def run_table3(model_path: str | Path, onnx_path: str | Path, skim_path: str | Path, *, csv_path: str | Path,
               png_path: str | Path, precision_csv_path: str | Path, int8_path: str | Path,
               batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, n_rows: int = 1 << 20, repeats: int = 5,
               threads_list: Sequence[int] = (1, 2), optimized_path: str | Path | None = None,
               calibration_rows: int = 20_000, precision_rows: int = 100_000,
               torch_reference: bool = True, fpga_csv_path: str | Path | None = None,
               sgemm_size: int = SGEMM_SIZE) -> pd.DataFrame:  # fmt: skip
    """Table 3 on this machine, the throughput plot, the int8 model and its Table-2 cost (the Snakemake stage).

    Measured: the exported graph at every thread count of ``threads_list``, the optimised graph likewise and as
    ``n`` concurrent single-thread sessions (n = the largest thread count, when > 1), the compiled kernel on the
    optimised graph (:mod:`l1refit.deploy.native`) with one and ``n`` callers, the int8 graph with one thread,
    PyTorch eager with one thread, and CUDA / TensorRT when onnxruntime offers them. The int8 model is calibrated
    on the skim's last ``calibration_rows`` rows; its metrics use the first ``precision_rows`` rows. Every step and
    every measured row is logged. ``fpga_csv_path`` (``table3_fpga.csv``) adds the firmware estimate to the plot.
    First, the machine's SGEMM roofline (``sgemm_size``² matrices, :func:`measure_roofline`) on one and all cores.
    """
    from l1refit.ml.checkpoint import TrainedModel

    t_start = time.perf_counter()
    onnx_path = Path(onnx_path)
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path}: export the model first (l1refit.deploy.onnx_export.export_onnx)")
    inputs = graph_inputs(onnx_path)
    skim = _read_skim(skim_path, inputs)
    peak = cpu_peak()
    log.info(f"nominal FP32 peak: {peak.describe()}")
    roofline = measure_roofline(size=sgemm_size)
    log.info(roofline.describe())
    log.info(f"graph {onnx_path}: {mlp_flops(onnx_path):,} FLOPs per inference; requirement "
             f"{REQUIREMENT:.0e}/s; {len(skim):,} skim rows")  # fmt: skip
    common = {"batch_sizes": batch_sizes, "n_rows": n_rows, "repeats": repeats,
              "inputs": random_hw(max(n_rows, max(batch_sizes)), inputs)}  # fmt: skip
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        if optimized_path is None:
            optimized_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="l1refit-opt-"))) / "opt.onnx"
        optimize_onnx(onnx_path, optimized_path)
        log.info(f"optimised inference graph: {optimized_path}")
        notes = quantize_int8(onnx_path, int8_path, skim.iloc[-calibration_rows:])
        log.info(f"int8 model {int8_path}: {notes['method']}, {len(notes['nodes'])} Gemm nodes")
        for threads in threads_list:
            rows += time_onnx(onnx_path, threads=threads, graph="exported", **common)
            rows += time_onnx(optimized_path, threads=threads, graph="optimised", **common)
        most = max(threads_list)
        if most > 1:
            rows += time_onnx(optimized_path, threads=1, sessions=most, graph="optimised", **common)
            rows += time_onnx(onnx_path, threads=1, sessions=most, graph="exported", **common)
        rows += _kernel_rows(optimized_path, most, common)
        rows += time_onnx(int8_path, threads=1, precision=int8_label(int8_path), graph="exported", **common)
        if torch_reference:
            rows += time_torch(TrainedModel.load(model_path), threads=1, **common)
        accelerators = accelerator_providers()
        if not accelerators:
            log.info(f"no CUDA / TensorRT provider in onnxruntime {ort.__version__} "
                     f"({', '.join(ort.get_available_providers())}): GPU rows skipped")  # fmt: skip
        for provider in accelerators:
            try:
                rows += time_onnx(onnx_path, providers=[provider, "CPUExecutionProvider"], **common)
            except Exception as err:  # a provider that is listed but cannot run is reported, not fatal
                log.warning(f"{provider} failed: {type(err).__name__}: {err}")
    df = table3(rows, peak=peak, roofline=roofline)
    write_table3(df, csv_path)
    throughput_plot(df, png_path, fpga=pd.read_csv(fpga_csv_path) if fpga_csv_path else None)
    best = best_row(df)
    log.info(f"best CPU: {best['config']} at batch {int(best['batch_size'])}: "
             f"{best['throughput_per_s'] / 1e6:.2f} M/s = {best['vs_requirement']:.1f} x requirement, "
             f"{best['gflops']:.1f} GFLOP/s = {100 * best['roofline_fraction']:.1f} % of the measured SGEMM "
             f"roofline of {best['roofline_gflops']:.0f} GFLOP/s")  # fmt: skip
    precision = precision_metrics(onnx_path, int8_path, skim, n_rows=precision_rows)
    write_csv(precision, precision_csv_path)
    for _, row in precision.iterrows():
        log.info(f"{row['model']:>3} {row['precision']:<18} " + " ".join(
            f"{c}={row[c]:.4g}" for c in METRIC_COLUMNS))  # fmt: skip
    log.info(f"done in {time.perf_counter() - t_start:.0f} s -> {csv_path}, {png_path}, {precision_csv_path}")
    return df
