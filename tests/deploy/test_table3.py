"""Paper Table 3 on our hardware: the paper's rows, the derived columns, the CSV and plot, and the stage."""

import logging
import math

import pandas as pd
import pytest
from PIL import Image

from l1refit.deploy import table3 as t3
from l1refit.deploy.flops import CpuPeak
from l1refit.deploy.quantize import INT8
from l1refit.deploy.roofline import ROOFLINE_BACKEND, Roofline
from l1refit.deploy.runtime import accelerator_providers
from l1refit.deploy.timing import MEASURED

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PEAK = CpuPeak(model="test CPU", cores=2, ghz=2.1, isa="AVX-512 FMA", fma_units=2, lanes=16)


def _measured_row(**overrides):
    row = {"backend": "onnxruntime CPU", "precision": "fp32", "graph": "exported", "device": "cpu", "threads": 2,
           "sessions": 1, "batch_size": 4096, "throughput_per_s": 2.688e7, "latency_median_us": 150.0,
           "latency_p99_us": 300.0, "source": MEASURED, "config": "cpu 2 threads", "flops": 4544}  # fmt: skip
    return row | overrides


def test_paper_table3_is_the_published_table():
    got = [(r["board"], r["clusters"], r["latency_ns"], r["throughput_per_s"]) for r in t3.PAPER_TABLE3]
    assert got == [("AC-510", 1, 726, 1_300_400), ("AC-510", 2, 364, 2_700_000), ("SB-852", 1, 748, 1_300_000)]
    assert all(r["source"] == "paper (published)" and r["throughput_is_lower_bound"] for r in t3.PAPER_TABLE3)
    assert t3.REQUIREMENT == 1e6
    assert t3.PAPER_BEST["throughput_per_s"] == 2_700_000


def test_table3_columns_derived_values_and_paper_rows():
    df = t3.table3([_measured_row(), _measured_row(precision=INT8, throughput_per_s=5e6)], peak=PEAK)
    for column in ("backend", "precision", "device", "threads", "batch_size", "throughput_per_s",
                   "latency_median_us", "latency_p99_us", "vs_requirement", "source"):  # fmt: skip
        assert column in df.columns
    paper = df[df["source"] == t3.PAPER_SOURCE]
    assert len(paper) == 3 and set(paper["backend"]) == {"Micron MDLA (FPGA)"}
    assert paper["vs_requirement"].tolist() == pytest.approx([1.3004, 2.7, 1.3])
    assert paper["latency_median_us"].tolist() == pytest.approx([0.726, 0.364, 0.748])
    fp32 = df.iloc[0]
    assert fp32["source"] == "measured" and fp32["vs_requirement"] == pytest.approx(26.88)
    assert fp32["ns_per_inference"] == pytest.approx(1e9 / 2.688e7)
    assert fp32["gflops"] == pytest.approx(2.688e7 * 4544 / 1e9)
    assert fp32["fp32_peak_fraction"] == pytest.approx(fp32["gflops"] / 268.8)
    assert math.isnan(df.iloc[1]["fp32_peak_fraction"])  # int8 rows: no FP32 fraction
    assert len(t3.table3([_measured_row()], include_paper=False, peak=PEAK)) == 1
    assert math.isnan(fp32["roofline_fraction"])  # no roofline measured: no fraction of it


def test_table3_fractions_of_the_measured_roofline():
    roofline = Roofline(one_core_gflops=150.0, all_cores_gflops=290.0, cores=2, library="test BLAS")
    rows = [_measured_row(), _measured_row(threads=1, sessions=1), _measured_row(precision=INT8)]
    df = t3.table3(rows, include_paper=False, peak=PEAK, roofline=roofline)
    two, one, int8 = (df.iloc[k] for k in range(3))
    assert two["roofline_gflops"] == 290.0 and one["roofline_gflops"] == 150.0
    assert two["roofline_fraction"] == pytest.approx(2.688e7 * 4544 / 1e9 / 290.0)
    assert one["roofline_fraction"] == pytest.approx(2.688e7 * 4544 / 1e9 / 150.0)
    assert math.isnan(int8["roofline_fraction"])
    sgemm = df[df["backend"] == ROOFLINE_BACKEND]
    assert sgemm["gflops"].tolist() == [150.0, 290.0] and sgemm["roofline_fraction"].tolist() == [1.0, 1.0]
    assert t3.best_row(df)["backend"] == "onnxruntime CPU"  # the SGEMM rows are a reference, never the best row
    assert t3._roofline_rate(df) == pytest.approx(290e9 / 4544)
    unknown = CpuPeak(model="hidden CPU", cores=2, ghz=2.0, isa="AVX-512", fma_units=0, lanes=0)
    assert df["fp32_peak_fraction"].notna().any()
    assert t3.table3(rows, peak=unknown, roofline=roofline)["fp32_peak_fraction"].isna().all()
    assert t3.best_row(df)["precision"] == "fp32"


def test_write_table3_and_throughput_plot(tmp_path):
    rows = [_measured_row(batch_size=b, throughput_per_s=1e5 * b**0.5) for b in (1, 64, 4096)]
    rows += [_measured_row(batch_size=b, throughput_per_s=2e5 * b**0.5, config="other") for b in (1, 64, 4096)]
    df = t3.table3(rows, peak=PEAK)
    csv = t3.write_table3(df, tmp_path / "table3.csv")
    back = pd.read_csv(csv)
    assert len(back) == 9 and set(back["source"]) == {"measured", "paper (published)"}
    png = t3.throughput_plot(df, tmp_path / "throughput.png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    with Image.open(png) as image:
        assert image.width >= 800 and image.height >= 500
    assert not list(tmp_path.glob(".*tmp*"))
    # the chosen FPGA design's estimate is drawn as one more line (and widens the axis to 250 M/s)
    fpga = pd.DataFrame({"chosen": [False, True], "inferences_per_s_estimate": [2.5e8, 2.5e8]})
    with_fpga = t3.throughput_plot(df, tmp_path / "with_fpga.png", fpga=fpga)
    none_chosen = t3.throughput_plot(df, tmp_path / "none.png", fpga=fpga.assign(chosen=False))
    assert with_fpga.read_bytes() != png.read_bytes() and none_chosen.read_bytes() == png.read_bytes()


def test_run_table3_writes_table_plot_int8_and_precision(exported, tmp_path, caplog):
    _, path, skim, model = exported
    model_path, skim_path = tmp_path / "model.pt", tmp_path / "skim.parquet"
    model.save(model_path)
    skim.to_parquet(skim_path)
    out = {"csv_path": tmp_path / "t3.csv", "png_path": tmp_path / "t3.png",
           "precision_csv_path": tmp_path / "t3_precision.csv", "int8_path": tmp_path / "int8.onnx"}  # fmt: skip
    quick = {"batch_sizes": (1, 128), "n_rows": 1024, "repeats": 1, "threads_list": (1, 2), "calibration_rows": 500,
             "precision_rows": 1000, "sgemm_size": 256}  # fmt: skip
    caplog.set_level(logging.INFO, logger="l1refit")
    df = t3.run_table3(model_path, path, skim_path, **out, **quick)
    assert all(p.exists() for p in out.values())
    table = pd.read_csv(out["csv_path"])
    assert len(table) == len(df) and (table["source"] == "paper (published)").sum() == 3
    configs = set(table.loc[table["source"] == "measured", "config"])
    assert {
        "onnxruntime CPU, exported graph, fp32, 1 thread", "onnxruntime CPU, optimised graph, fp32, 2 threads",
        "onnxruntime CPU, optimised graph, fp32, 2 sessions x 1 thread",
        "onnxruntime CPU, exported graph, int8 (static QDQ), 1 thread", "PyTorch eager CPU, fp32, 1 thread",
        "l1refit kernel CPU, optimised graph, fp32, 1 thread",
        "l1refit kernel CPU, optimised graph, fp32, 2 sessions x 1 thread",
    } <= configs  # fmt: skip
    timed = (table["source"] == "measured") & (table["backend"] != ROOFLINE_BACKEND)
    assert (table.loc[timed, "throughput_per_s"] > 0).all()
    assert (table.loc[timed & (table["precision"] == "fp32"), "roofline_fraction"] > 0).all()
    assert (table["backend"] == ROOFLINE_BACKEND).sum() == 2 and "measured FP32 roofline" in caplog.text
    assert len(pd.read_csv(out["precision_csv_path"])) == 3
    assert "best CPU:" in caplog.text and "FP32 peak" in caplog.text
    assert "onnxruntime CPU, exported graph, fp32, 1 thread" in caplog.text  # one line per measured row
    if not accelerator_providers():
        assert "GPU rows skipped" in caplog.text
    with pytest.raises(FileNotFoundError, match="export the model first"):
        t3.run_table3(model_path, tmp_path / "missing.onnx", skim_path, **out)
