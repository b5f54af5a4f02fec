"""The measured FP32 roofline: SGEMM throughput with NumPy and PyTorch, and the arithmetic of its per-core figure."""

import math

import pytest

from l1refit.deploy.roofline import ROOFLINE_BACKEND, Roofline, concurrent_sgemm_gflops, measure_roofline, sgemm_gflops


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_sgemm_gflops_measures_a_multiply(library):
    gflops = sgemm_gflops(threads=1, library=library, size=256, repeats=2)
    assert math.isfinite(gflops) and gflops > 0.01
    assert concurrent_sgemm_gflops(2, library=library, size=256, repeats=2) > 0.01
    with pytest.raises(ValueError, match="numpy' or 'torch'"):
        sgemm_gflops(library="eigen", size=8)


def test_roofline_of_a_number_of_cores():
    roofline = Roofline(one_core_gflops=100.0, all_cores_gflops=170.0, cores=2, library="test", size=64)
    assert [roofline.gflops(c) for c in (0.5, 1, 2, 8)] == [100.0, 100.0, 170.0, 170.0]
    four = Roofline(one_core_gflops=100.0, all_cores_gflops=350.0, cores=4, library="test")
    assert four.gflops(2) == 200.0 and four.gflops(3) == 300.0 and four.gflops(4) == 350.0
    faster_together = Roofline(one_core_gflops=100.0, all_cores_gflops=210.0, cores=2, library="test")
    assert faster_together.gflops(2) == 210.0  # all cores: the measurement itself
    rows = roofline.rows()
    assert [(r["backend"], r["threads"], r["gflops"]) for r in rows] == [(ROOFLINE_BACKEND, 1, 100.0),
                                                                          (ROOFLINE_BACKEND, 2, 170.0)]  # fmt: skip
    assert "100.0 GFLOP/s on 1 core, 170.0 GFLOP/s on 2 cores" in roofline.describe()


def test_measure_roofline_keeps_the_faster_library():
    roofline = measure_roofline(cores=1, size=256, repeats=2)
    assert roofline.cores == 1 and roofline.one_core_gflops == roofline.all_cores_gflops > 0
    assert roofline.library.startswith(("NumPy", "PyTorch"))
