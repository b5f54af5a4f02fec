"""Table 3 on our hardware (l1refit.bench): the paper's rows, the benchmark rows, the inference graph, the int8 model.

A tiny model (one epoch on a toy skim) is exported once per module. Timings are only checked to be positive and
ordered (p99 >= median); nothing asserts on speed, which varies by about ±30 % on the shared machines.
"""

import math

import numpy as np
import onnx
import pandas as pd
import pytest
from PIL import Image
from test_model import _fit, _toy_skim

from l1refit import bench
from l1refit.export import export_onnx, read_metadata
from l1refit.metrics import METRIC_COLUMNS
from l1refit.scales import wrap_phi

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PI32 = float(np.float32(np.pi))  # the graph's π constant (float32 rounds π up)
QUICK = {"batch_sizes": (1, 64, 512), "n_rows": 4096, "repeats": 2, "max_calls": 50}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(tmp dir, exported graph, skim, model) of an absolute-pT model trained one epoch on a toy skim."""
    tmp = tmp_path_factory.mktemp("bench")
    skim = _toy_skim(3000, seed=5, noise=0.01)
    model, _ = _fit(skim, epochs=1)
    path = tmp / "toy.onnx"
    export_onnx(model, path, "toy")
    return tmp, path, skim, model


@pytest.fixture(scope="module")
def int8(exported):
    tmp, path, skim, _ = exported
    notes = bench.quantize_int8(path, tmp / "toy_int8.onnx", skim.iloc[-1000:], batch_size=250)
    return tmp / "toy_int8.onnx", notes


def _measured_row(**overrides):
    row = {"backend": "onnxruntime CPU", "precision": "fp32", "graph": "exported", "device": "cpu", "threads": 2,
           "sessions": 1, "batch_size": 4096, "throughput_per_s": 2.688e7, "latency_median_us": 150.0,
           "latency_p99_us": 300.0, "source": bench.MEASURED, "config": "cpu 2 threads", "flops": 4544}  # fmt: skip
    return row | overrides


PEAK = bench.CpuPeak(model="test CPU", cores=2, ghz=2.1, isa="AVX-512 FMA", fma_units=2, lanes=16)


# ---------------------------------------------------------------------------------------------------------------
# the paper's rows and the table


def test_paper_table3_is_the_published_table():
    got = [(r["board"], r["clusters"], r["latency_ns"], r["throughput_per_s"]) for r in bench.PAPER_TABLE3]
    assert got == [("AC-510", 1, 726, 1_300_400), ("AC-510", 2, 364, 2_700_000), ("SB-852", 1, 748, 1_300_000)]
    assert all(r["source"] == "paper (published)" and r["throughput_is_lower_bound"] for r in bench.PAPER_TABLE3)
    assert bench.REQUIREMENT == 1e6
    assert bench.PAPER_BEST["throughput_per_s"] == 2_700_000


def test_table3_columns_derived_values_and_paper_rows():
    df = bench.table3([_measured_row(), _measured_row(precision=bench.INT8, throughput_per_s=5e6)], peak=PEAK)
    for column in ("backend", "precision", "device", "threads", "batch_size", "throughput_per_s",
                   "latency_median_us", "latency_p99_us", "vs_requirement", "source"):  # fmt: skip
        assert column in df.columns
    paper = df[df["source"] == bench.PAPER_SOURCE]
    assert len(paper) == 3 and set(paper["backend"]) == {"Micron MDLA (FPGA)"}
    assert paper["vs_requirement"].tolist() == pytest.approx([1.3004, 2.7, 1.3])
    assert paper["latency_median_us"].tolist() == pytest.approx([0.726, 0.364, 0.748])
    fp32 = df.iloc[0]
    assert fp32["source"] == "measured" and fp32["vs_requirement"] == pytest.approx(26.88)
    assert fp32["ns_per_inference"] == pytest.approx(1e9 / 2.688e7)
    assert fp32["gflops"] == pytest.approx(2.688e7 * 4544 / 1e9)
    assert fp32["fp32_peak_fraction"] == pytest.approx(fp32["gflops"] / 268.8)
    assert math.isnan(df.iloc[1]["fp32_peak_fraction"])  # int8 rows: no FP32 fraction
    assert len(bench.table3([_measured_row()], include_paper=False, peak=PEAK)) == 1
    assert bench.best_row(df)["precision"] == "fp32"


def test_cpu_peak_from_cpuinfo():
    cpuinfo = "model name\t: Intel(R) Xeon(R) Processor @ 2.10GHz\nflags\t\t: fpu sse avx2 fma avx512f avx512bw\n"
    peak = bench.cpu_peak(cpuinfo, cores=2)
    assert (peak.ghz, peak.flops_per_cycle, peak.gflops()) == (2.1, 64, pytest.approx(268.8))
    avx2 = bench.cpu_peak("model name : X\ncpu MHz : 3000.0\nflags : avx2 fma\n", cores=4)
    assert avx2.gflops() == pytest.approx(4 * 3.0 * 32)
    assert "268.8 GFLOP/s" in peak.describe()


def test_write_table3_and_throughput_plot(tmp_path):
    rows = [_measured_row(batch_size=b, throughput_per_s=1e5 * b**0.5) for b in (1, 64, 4096)]
    rows += [_measured_row(batch_size=b, throughput_per_s=2e5 * b**0.5, config="other") for b in (1, 64, 4096)]
    df = bench.table3(rows, peak=PEAK)
    csv = bench.write_table3(df, tmp_path / "table3.csv")
    back = pd.read_csv(csv)
    assert len(back) == 9 and set(back["source"]) == {"measured", "paper (published)"}
    png = bench.throughput_plot(df, tmp_path / "throughput.png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    with Image.open(png) as image:
        assert image.width >= 800 and image.height >= 500
    assert not list(tmp_path.glob(".*tmp*"))


# ---------------------------------------------------------------------------------------------------------------
# benchmarks


def test_flops_of_the_paper_network(exported):
    assert bench.mlp_flops(exported[1]) == 4544  # 2·(4·32 + 32·32 + 32·32 + 32·3)


def test_random_hw_in_hardware_ranges():
    x = bench.random_hw(5000, seed=1)
    assert x.dtype == np.float32 and x.shape == (5000, 4)
    assert x[:, 0].min() >= 0 and x[:, 0].max() <= 575 and set(np.unique(x[:, 3])) == {-1.0, 1.0}
    assert np.all(x == np.round(x))
    with pytest.raises(ValueError, match="no hardware range"):
        bench.random_hw(3, ("hwQual",))


@pytest.mark.parametrize("sessions", [1, 2])
def test_benchmark_onnx_rows(exported, sessions):
    rows = bench.benchmark_onnx(exported[1], threads=1, sessions=sessions, **QUICK)
    assert [r["batch_size"] for r in rows] == [1, 64, 512]
    for row in rows:
        assert row["throughput_per_s"] > 0 and row["latency_median_us"] > 0
        assert row["latency_p99_us"] >= row["latency_median_us"]
        assert row["source"] == "measured" and row["sessions"] == sessions and row["flops"] == 4544
    assert bench.benchmark_onnx(exported[1], batch_sizes=(32,), n_rows=256, repeats=1)[0]["batch_size"] == 1


def test_benchmark_torch_rows(exported):
    rows = bench.benchmark_torch(exported[3], threads=1, **QUICK)
    assert [r["batch_size"] for r in rows] == [1, 64, 512]
    assert all(r["throughput_per_s"] > 0 and r["latency_p99_us"] >= r["latency_median_us"] for r in rows)
    assert rows[0]["backend"] == "PyTorch eager CPU" and rows[0]["flops"] == 4544


def test_profile_ops_accounts_for_the_gemms(exported):
    ops, run_us = bench.profile_ops(exported[1], batch_size=256, calls=20)
    assert run_us > 0 and ops["share"].sum() == pytest.approx(1.0)
    assert ops["op_type"].str.contains("Gemm").any()


def _outputs(path, x):
    return bench.run_onnx(path, x).astype(np.float64)


def test_optimized_graph_is_equivalent_and_smaller(exported):
    tmp, path, skim, _ = exported
    opt = bench.optimize_onnx(path, tmp / "toy_opt.onnx")
    x = np.concatenate([bench._edge_rows(bench.graph_inputs(path)), bench.random_hw(5000, seed=3)])
    want, got = _outputs(path, x), _outputs(opt, x)
    assert np.abs(wrap_phi(got[:, 0] - want[:, 0])).max() < 1e-5
    np.testing.assert_allclose(got[:, 1:], want[:, 1:], atol=1e-4)
    assert np.all((got[:, 0] > -PI32) & (got[:, 0] <= PI32))
    assert len(onnx.load(opt).graph.node) < len(onnx.load(path).graph.node) / 3
    assert bench.mlp_flops(opt) == 4544
    assert read_metadata(opt)["optimized"].startswith("l1refit.bench.optimize_onnx")


def test_optimized_graph_of_a_relative_pt_model(tmp_path):
    skim = _toy_skim(1500, seed=2)
    model, _ = _fit(skim, epochs=1, pt_target="relative")
    path = tmp_path / "rel.onnx"
    export_onnx(model, path, "rel")
    opt = bench.optimize_onnx(path, tmp_path / "rel_opt.onnx", check_rows=2000)  # raises if not equivalent
    x = bench.random_hw(1000, seed=4)
    np.testing.assert_allclose(_outputs(opt, x)[:, 1:], _outputs(path, x)[:, 1:], rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# int8


def test_int8_model_runs_close_to_float_and_keeps_phi_exactly_wrapped(exported, int8):
    _, path, skim, _ = exported
    int8_path, notes = int8
    assert notes["method"].startswith("static QDQ") and len(notes["nodes"]) == 4
    proto = onnx.load(int8_path)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Floor"} <= ops
    quantized_inputs = {n.input[0] for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    assert "hw" not in quantized_inputs  # the raw integers and the L1 physics stay float
    assert bench.graph_inputs(int8_path) == bench.graph_inputs(path)
    x = skim[list(bench.graph_inputs(path))].to_numpy(np.float32)
    want, got = _outputs(path, x), _outputs(int8_path, x)
    d_pt = np.abs(got[:, 2] - want[:, 2])
    assert np.quantile(d_pt, 0.9) < 0.05 * np.abs(want[:, 2]).mean()
    assert np.quantile(np.abs(wrap_phi(got[:, 0] - want[:, 0])), 0.9) < 0.05
    assert np.all((got[:, 0] > -PI32) & (got[:, 0] <= PI32))
    edges = bench._edge_rows(bench.graph_inputs(path))  # φ 0 and 575: the wrap itself is exact float
    assert np.all(np.abs(_outputs(int8_path, edges)[:, 0]) <= PI32)


def test_int8_refuses_the_optimized_graph(exported, tmp_path):
    tmp, path, skim, _ = exported
    opt = bench.optimize_onnx(path, tmp_path / "opt.onnx", check_rows=100)
    with pytest.raises(ValueError, match="quantise the exported graph"):
        bench.quantize_int8(opt, tmp_path / "int8.onnx", skim.iloc[:100])


def test_precision_metrics_float_vs_int8(exported, int8):
    _, path, skim, _ = exported
    table = bench.precision_metrics(path, int8[0], skim, n_rows=2000)
    assert table["precision"].tolist() == ["hardware scales", "fp32", bench.INT8]
    assert set(METRIC_COLUMNS) <= set(table.columns) and (table["n_rows"] == 2000).all()
    fp32, q = table.iloc[1], table.iloc[2]
    assert fp32["dphi_vs_fp32_median"] == 0 and q["dpt_rel_vs_fp32_median"] > 0
    assert all(0 <= fp32[c] <= 100 for c in METRIC_COLUMNS if c.endswith(("_core", "_tail")))


# ---------------------------------------------------------------------------------------------------------------
# the stage


def test_run_table3_writes_table_plot_int8_and_precision(exported, tmp_path):
    _, path, skim, model = exported
    model_path, skim_path = tmp_path / "model.pt", tmp_path / "skim.parquet"
    model.save(model_path)
    skim.to_parquet(skim_path)
    lines = []
    out = {"csv_path": tmp_path / "t3.csv", "png_path": tmp_path / "t3.png",
           "precision_csv_path": tmp_path / "t3_precision.csv", "int8_path": tmp_path / "int8.onnx"}  # fmt: skip
    quick = {"batch_sizes": (1, 128), "n_rows": 1024, "repeats": 1, "threads_list": (1, 2), "calibration_rows": 500,
             "precision_rows": 1000}  # fmt: skip
    df = bench.run_table3(model_path, path, skim_path, **out, **quick, progress=lines.append)
    assert all(p.exists() for p in out.values())
    table = pd.read_csv(out["csv_path"])
    assert len(table) == len(df) and (table["source"] == "paper (published)").sum() == 3
    configs = set(table.loc[table["source"] == "measured", "config"])
    assert {
        "onnxruntime CPU, exported graph, fp32, 1 thread", "onnxruntime CPU, optimised graph, fp32, 2 threads",
        "onnxruntime CPU, optimised graph, fp32, 2 sessions x 1 thread",
        "onnxruntime CPU, exported graph, int8 (static QDQ), 1 thread", "PyTorch eager CPU, fp32, 1 thread",
    } <= configs  # fmt: skip
    assert (table.loc[table["source"] == "measured", "throughput_per_s"] > 0).all()
    assert len(pd.read_csv(out["precision_csv_path"])) == 3
    text = "\n".join(lines)
    assert "best CPU:" in text and "FP32 peak" in text
    if not bench.accelerator_providers():
        assert "GPU rows skipped" in text
    with pytest.raises(FileNotFoundError, match="export the model first"):
        bench.run_table3(model_path, tmp_path / "missing.onnx", skim_path, **out)
