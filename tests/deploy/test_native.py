"""The compiled kernel (l1refit.deploy.native): the optimised graph's outputs within float rounding, on every
tile remainder and split, the graphs it refuses, and its build (compiler missing or failing, cache reuse)."""

import platform

import numpy as np
import pytest

from l1refit.deploy.hw_inputs import edge_rows, random_hw
from l1refit.deploy.metadata import graph_inputs
from l1refit.deploy.native import NativeKernelError, NativeMLP, build_kernel
from l1refit.deploy.onnx_export import export_onnx
from l1refit.deploy.optimize import optimize_onnx
from l1refit.deploy.runtime import run_onnx
from l1refit.ml.spec import ModelSpec
from l1refit.scales import wrap_phi

PI32 = float(np.float32(np.pi))


@pytest.fixture(scope="module")
def optimised(exported, tmp_path_factory):
    """(optimised graph of the toy model, build directory of the kernel)."""
    tmp = tmp_path_factory.mktemp("native")
    return optimize_onnx(exported[1], tmp / "toy_opt.onnx"), tmp / "build"


def _inputs(path, n, seed):
    return np.concatenate([edge_rows(graph_inputs(path)), random_hw(n, seed=seed)]).astype(np.float32)


def test_kernel_equals_the_optimised_graph_within_float_rounding(optimised):
    path, build = optimised
    kernel = NativeMLP.from_onnx(path, build_dir=build)
    x = _inputs(path, 5003, seed=8)  # not a multiple of the 64-muon tile
    want, got = run_onnx(path, x).astype(np.float64), kernel(x).astype(np.float64)
    assert np.abs(wrap_phi(got[:, 0] - want[:, 0])).max() < 1e-5  # φ may wrap on the other side of ±π
    np.testing.assert_allclose(got[:, 1], want[:, 1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[:, 2], want[:, 2], rtol=1e-5, atol=1e-5)
    assert np.all((got[:, 0] > -PI32) & (got[:, 0] <= PI32 + 1e-6))
    for n in (0, 1, 63, 64, 65, 130):  # tile remainders: each row its own, whatever shares its tile
        np.testing.assert_array_equal(kernel(x[:n]), got[:n].astype(np.float32))
    split = NativeMLP.from_onnx(path, threads=3, build_dir=build)
    np.testing.assert_array_equal(split(x), got.astype(np.float32))  # rows split among threads: the same numbers
    split.close()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction-set targets")
@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])
def test_narrower_instruction_sets_give_the_same_outputs(optimised, march):
    # AVX2 and SSE2 builds: 8- and 4-lane vectors, 3-unit blocks (remainder blocks of 1 and 2), scalar transposes
    path, build = optimised
    x = _inputs(path, 3001, seed=9)
    want = NativeMLP.from_onnx(path, build_dir=build)(x).astype(np.float64)
    got = NativeMLP.from_onnx(path, build_dir=build, march=march)(x).astype(np.float64)
    assert np.abs(wrap_phi(got[:, 0] - want[:, 0])).max() < 1e-5
    np.testing.assert_allclose(got[:, 1:], want[:, 1:], rtol=1e-5, atol=1e-5)


def test_kernel_checks_its_arrays(optimised):
    path, build = optimised
    kernel = NativeMLP.from_onnx(path, build_dir=build)
    x = _inputs(path, 10, seed=1)
    with pytest.raises(ValueError, match=r"float32 \(N, 4\)"):
        kernel.run_into(x.astype(np.float64), np.empty((len(x), 3), np.float32))
    with pytest.raises(ValueError, match=rf"output must be C-contiguous float32 \({len(x)}, 3\)"):
        kernel.run_into(x, np.empty((len(x), 4), np.float32))
    with pytest.raises(ValueError, match="threads must be >= 1"):
        NativeMLP.from_onnx(path, threads=0, build_dir=build)


def test_kernel_refuses_graphs_it_does_not_run(exported, optimised, tmp_path, toy_skim, fit_toy):
    build = optimised[1]
    with pytest.raises(ValueError, match="not an optimised graph"):
        NativeMLP.from_onnx(exported[1], build_dir=build)
    skim = toy_skim(1200, seed=3)
    relative, _ = fit_toy(skim, epochs=1, pt_target="relative")
    export_onnx(relative, tmp_path / "rel.onnx", "rel")
    with pytest.raises(ValueError, match="absolute-pT"):
        NativeMLP.from_onnx(optimize_onnx(tmp_path / "rel.onnx", tmp_path / "rel_opt.onnx", check_rows=500),
                            build_dir=build)  # fmt: skip
    softmax, _ = fit_toy(skim, ModelSpec("logcosh", "adam", None, "softmax", "linear"), epochs=1)
    export_onnx(softmax, tmp_path / "soft.onnx", "soft")
    with pytest.raises(ValueError, match="ReLU hidden layers"):
        NativeMLP.from_onnx(optimize_onnx(tmp_path / "soft.onnx", tmp_path / "soft_opt.onnx", check_rows=500),
                            build_dir=build)  # fmt: skip


def test_kernel_build_is_cached_and_its_failures_are_named(tmp_path, monkeypatch):
    first = build_kernel(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert build_kernel(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary file left behind
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("L1REFIT_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(NativeKernelError, match="cannot write the kernel to .*a-file/cache.*L1REFIT_CACHE"):
        build_kernel()
    monkeypatch.setenv("CC", "no-such-compiler-l1refit")
    with pytest.raises(NativeKernelError, match="no C compiler 'no-such-compiler-l1refit'"):
        build_kernel(tmp_path)
    monkeypatch.setenv("CC", "false")  # found, but fails to compile
    with pytest.raises(NativeKernelError, match="failed"):
        build_kernel(tmp_path / "other")
    assert not list((tmp_path / "other").iterdir())
