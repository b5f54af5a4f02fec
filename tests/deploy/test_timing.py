"""Inference timing and its arithmetic: rows per batch size (onnxruntime, PyTorch), profiler, FLOPs, CPU peak."""

import numpy as np
import pytest

from l1refit.deploy.flops import cpu_peak, mlp_flops
from l1refit.deploy.hw_inputs import random_hw
from l1refit.deploy.profiling import profile_ops
from l1refit.deploy.timing import time_onnx, time_torch

QUICK = {"batch_sizes": (1, 64, 512), "n_rows": 4096, "repeats": 2, "max_calls": 50}


def _cpuinfo(vendor, family, model, name, flags, mhz="2100.000"):
    return (f"vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: {name}\n"
            f"cpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n")  # fmt: skip


def test_cpu_peak_from_the_family_table_not_from_the_flags():
    avx512 = "fpu sse avx2 fma avx512f avx512bw"
    emerald = cpu_peak(_cpuinfo("GenuineIntel", 6, 207, "Intel(R) Xeon(R) Processor", avx512), cores=2)
    assert (emerald.ghz, emerald.flops_per_cycle, emerald.gflops()) == (2.1, 64, pytest.approx(268.8))
    assert "Emerald Rapids" in emerald.describe() and "268.8 GFLOP/s" in emerald.describe()
    # Zen 4 has AVX-512 but two 256-bit FMA pipes: 32 FP32 FLOPs per cycle, not 64
    zen4 = cpu_peak(_cpuinfo("AuthenticAMD", 25, 17, "AMD EPYC 9654 96-Core Processor", avx512, "2600.0"), cores=2)
    assert (zen4.microarchitecture, zen4.flops_per_cycle, zen4.gflops()) == ("Zen 4", 32, pytest.approx(166.4))
    zen3 = cpu_peak(_cpuinfo("AuthenticAMD", 25, 1, "AMD EPYC 7763", "avx2 fma", "2450.0"), cores=1)
    assert zen3.microarchitecture == "Zen 3" and zen3.flops_per_cycle == 32
    gold = cpu_peak(_cpuinfo("GenuineIntel", 6, 85, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", avx512), cores=4)
    silver = cpu_peak(_cpuinfo("GenuineIntel", 6, 85, "Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz", avx512), cores=4)
    assert (gold.ghz, gold.flops_per_cycle, silver.ghz, silver.flops_per_cycle) == (2.5, 64, 2.2, 32)
    # a Skylake-SP under a hypervisor that hides the SKU, and a CPU not in the table: no nominal peak
    for hidden in (_cpuinfo("GenuineIntel", 6, 85, "Intel Xeon Processor (Cascadelake)", avx512),
                   _cpuinfo("GenuineIntel", 6, 999, "Future Xeon", avx512)):  # fmt: skip
        peak = cpu_peak(hidden, cores=2)
        assert not peak.known and np.isnan(peak.gflops()) and "not known" in peak.describe()


def test_flops_of_the_paper_network(exported):
    assert mlp_flops(exported[1]) == 4544  # 2·(4·32 + 32·32 + 32·32 + 32·3)


def test_random_hw_in_hardware_ranges():
    x = random_hw(5000, seed=1)
    assert x.dtype == np.float32 and x.shape == (5000, 4)
    assert x[:, 0].min() >= 0 and x[:, 0].max() <= 575 and set(np.unique(x[:, 3])) == {-1.0, 1.0}
    assert np.all(x == np.round(x))
    with pytest.raises(ValueError, match="no hardware range"):
        random_hw(3, ("hwQual",))


@pytest.mark.parametrize("sessions", [1, 2])
def test_time_onnx_rows(exported, sessions):
    rows = time_onnx(exported[1], threads=1, sessions=sessions, **QUICK)
    assert [r["batch_size"] for r in rows] == [1, 64, 512]
    for row in rows:
        assert row["throughput_per_s"] > 0 and row["latency_median_us"] > 0
        assert row["latency_p99_us"] >= row["latency_median_us"]
        assert row["source"] == "measured" and row["sessions"] == sessions and row["flops"] == 4544
    assert time_onnx(exported[1], batch_sizes=(32,), n_rows=256, repeats=1)[0]["batch_size"] == 1


def test_time_torch_rows(exported):
    rows = time_torch(exported[3], threads=1, **QUICK)
    assert [r["batch_size"] for r in rows] == [1, 64, 512]
    assert all(r["throughput_per_s"] > 0 and r["latency_p99_us"] >= r["latency_median_us"] for r in rows)
    assert rows[0]["backend"] == "PyTorch eager CPU" and rows[0]["flops"] == 4544


def test_profile_ops_accounts_for_the_gemms(exported):
    ops, run_us = profile_ops(exported[1], batch_size=256, calls=20)
    assert run_us > 0 and ops["share"].sum() == pytest.approx(1.0)
    assert ops["op_type"].str.contains("Gemm").any()
