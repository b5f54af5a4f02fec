"""FPGA firmware: the folded model on raw integers, hls4ml's C simulation, the bit-exact emulator, da4ml's logic.

Two designs of the toy model (tests/deploy/conftest.py) are compiled with hls4ml and g++: the notes' recommended
round/saturate mode with outputs in uGMT LSBs, and a narrow truncate/wrap one (hls4ml's default modes) whose
accumulators overflow, so that every rounding and overflow path meets the C simulation.
"""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from l1refit.deploy.fpga import hls, rtl
from l1refit.deploy.fpga.design import Design, build_design
from l1refit.deploy.fpga.emulate import emulate
from l1refit.deploy.fpga.firmware import firmware_model
from l1refit.deploy.fpga.fixed import FixedType, Precision
from l1refit.deploy.fpga.hardware import corrected
from l1refit.deploy.hw_inputs import edge_rows, random_hw
from l1refit.deploy.runtime import run_onnx
from l1refit.errors import L1RefitError
from l1refit.ml.checkpoint import TrainedModel
from l1refit.ml.network import build_mlp
from l1refit.ml.spec import ModelSpec

PART = "xcvu9p-flga2104-2L-e"
WIDE = "ap_fixed<14,5,AP_RND,AP_SAT>"  # saturates on some full-range inputs
NARROW = "ap_fixed<10,3>"  # AP_TRN, AP_WRAP: wraps on some full-range inputs
UNITS = {WIDE: "hardware", NARROW: "physical"}


def full_range(n: int, seed: int = 0) -> np.ndarray:
    """Random integers over the whole uGMT types (φ 10 bits, η 9 bits signed, pT 9 bits) plus every corner."""
    rng = np.random.default_rng(seed)
    rows = np.column_stack([rng.integers(0, 1024, n), rng.integers(-256, 256, n), rng.integers(0, 512, n),
                            rng.choice([-1, 1], n)])  # fmt: skip
    corners = np.array(np.meshgrid([0, 1023], [-256, 255], [0, 511], [-1, 1])).reshape(4, -1).T
    return np.concatenate([rows, corners])


def skim_range(inputs, n: int = 5000) -> np.ndarray:
    """Integers in the skims' ranges, with the range edges: where the network was trained."""
    return np.concatenate([edge_rows(inputs), random_hw(n, inputs, seed=3)]).astype(np.float64)


@pytest.fixture(scope="module")
def compiled(exported, tmp_path_factory):
    """{precision: (firmware model, design loaded from design.json, compiled hls4ml model, project dir)}."""
    tmp = tmp_path_factory.mktemp("fpga")
    out = {}
    for precision, units in UNITS.items():
        firmware = firmware_model(exported[3], "toy", units=units)
        path = tmp / units
        hls_model = hls.convert(firmware, precision, path, part=PART, clock_period=4.0)
        out[precision] = (firmware, Design.load(path / hls.DESIGN_FILE), hls_model, path)
    return out


def test_project_has_the_hardware_types_and_the_saved_design(compiled):
    firmware, design, _, path = compiled[WIDE]
    assert (path / "build_prj.tcl").is_file() and (path / "firmware" / f"{hls.PROJECT}.cpp").is_file()
    defines = (path / "firmware" / "defines.h").read_text()
    assert "typedef ap_int<11> input_t;" in defines  # φ 10-bit unsigned and η 9-bit signed need 11 signed bits
    assert "ap_fixed<14,5,AP_RND,AP_SAT,0>" in defines and "ap_fixed<14,-" in defines  # first-layer weights ~1/575
    assert "strategy = nnet::latency" in (path / "firmware" / "parameters.h").read_text()
    rebuilt = build_design(firmware, WIDE)
    assert design.to_dict() == rebuilt.to_dict() and design.units == "hardware"
    assert design.physical(np.ones((1, 3))).tolist() == [[0.010908, 0.010875, 0.5]]  # the uGMT LSBs
    assert [str(k) for k in design.input_types] == ["ap_uint<10>", "ap_int<9>", "ap_uint<9>", "ap_int<2>"]


@pytest.mark.parametrize("precision", [WIDE, NARROW])
def test_emulator_is_bit_exact_with_the_c_simulation(compiled, precision):
    _, design, hls_model, _ = compiled[precision]
    hw = full_range(20000)
    want = hls.csim(hls_model, hw)
    assert np.array_equal(emulate(design, hw), want)
    assert hls.check_bit_exact(design, hls_model, hw[:500]) == 500
    # saturation and wrapping really happen (in hidden layers at the range edges): the other mode differs
    other = {"AP_SAT": "AP_WRAP", "AP_WRAP": "AP_SAT"}[design.output_type.overflow]
    assert np.mean(np.any(emulate(with_overflow(design, other), hw) != want, axis=1)) > 0.01


def test_check_bit_exact_fails_on_one_changed_weight_bit(compiled):
    _, design, hls_model, _ = compiled[WIDE]
    changed = replace(design, layers=list(design.layers))
    first = changed.layers[0]
    weight = first.weight.copy()
    weight[0, 2] += 1  # one LSB of the hwPt weight of the first unit
    changed.layers[0] = replace(first, weight=weight)
    with pytest.raises(RuntimeError, match="differ on"):
        hls.check_bit_exact(changed, hls_model, full_range(2000))


def test_folded_firmware_model_gives_the_onnx_graph_outputs(exported, compiled):
    _, onnx_path, _, model = exported
    x = skim_range(model.inputs)
    physical, hardware = compiled[NARROW][0], compiled[WIDE][0]
    corrections = physical.predict(x)
    assert np.allclose(hardware.predict(x) * np.array(hardware.output_scale), corrections, rtol=1e-12, atol=1e-12)
    got, want = corrected(x, corrections, model.inputs, model.pt_target), run_onnx(onnx_path, x).astype(np.float64)
    d_phi = np.abs(np.angle(np.exp(1j * (got[:, 0] - want[:, 0]))))
    # float32 graph: a few ulp of values up to π, 1.3 and 45 GeV
    assert d_phi.max() < 2e-6 and np.abs(got[:, 1] - want[:, 1]).max() < 2e-6
    assert np.all(np.abs(got[:, 2] - want[:, 2]) < 2e-6 * (1 + np.abs(want[:, 2])))
    assert np.all((got[:, 0] > -np.pi) & (got[:, 0] <= np.pi))


def with_overflow(design: Design, mode: str) -> Design:
    """The same design with every result and ReLU type overflowing by ``mode``."""
    return replace(design, layers=[
        replace(layer, result_type=replace(layer.result_type, overflow=mode),
                relu_type=layer.relu_type and replace(layer.relu_type, overflow=mode))
        for layer in design.layers])  # fmt: skip


def rounding_noise(design: Design, firmware, x: np.ndarray) -> np.ndarray:
    """The expected RMS of fixed − float per output, from the types: every rounding an independent error.

    Rounding to a grid of step q (AP_RND) adds an error uniform in [−q/2, q/2), variance q²/12: the result of every
    layer, its bias, and each weight, whose error is multiplied by that input. Variances add through the layers as
    W² · var; a ReLU passes the variance of positive units only.
    """
    var, act = np.zeros_like(x), x
    for (_, weight, bias, relu), layer in zip(firmware.dense_layers(), design.layers, strict=True):
        q2 = [2.0 ** (-2 * kind.frac) / 12 for kind in (layer.weight_type, layer.bias_type, layer.result_type)]
        var = var @ (weight**2).T + q2[0] * (act**2 + var).sum(axis=1, keepdims=True) + q2[1] + q2[2]
        act = act @ weight.T + bias
        if relu:
            var, act = var * (act > 0), np.maximum(act, 0.0)
    return np.sqrt(var.mean(axis=0))


def test_fixed_point_design_deviates_by_its_rounding_noise(exported, compiled):
    """Where the network is used (skim ranges, nothing overflows) the design differs from the float firmware model by
    the rounding noise its types predict: RMS within [0.5, 1.5]× the prediction (measured 0.7-1.06 over W = 12-18),
    no deviation beyond 6× (a 6σ tail; measured ≤ 4.4×)."""
    firmware, design, _, _ = compiled[WIDE]
    x = skim_range(exported[3].inputs)
    fixed = emulate(design, x)
    assert np.array_equal(fixed, emulate(with_overflow(design, "AP_WRAP"), x))  # no overflow anywhere
    error = fixed - firmware.predict(x)
    expected = rounding_noise(design, firmware, x)
    ratio = np.sqrt(np.mean(error**2, axis=0)) / expected
    assert np.all((ratio > 0.5) & (ratio < 1.5)), ratio
    assert np.all(np.abs(error).max(axis=0) < 6 * expected)


def test_ap_fixed_quantisation_and_precision_strings():
    rnd_sat, trn_wrap = FixedType(4, 2, True, "AP_RND", "AP_SAT"), FixedType.parse("ap_fixed<4,2>")
    values = [0.125, -0.125, 0.375, 5.0, -9.0]  # ×4: 0.5, −0.5, 1.5, 20, −36
    assert rnd_sat.quantize(values).tolist() == [1, 0, 2, 7, -8]  # half up; saturate to [−8, 7]
    assert trn_wrap.quantize(values).tolist() == [0, -1, 1, 4, -4]  # floor; 20 − 16, −36 + 32
    assert FixedType.parse("ap_uint<10>").bounds == (0, 1023) and FixedType.parse("ap_int<9>").bounds == (-256, 255)
    for text in ("ap_uint<10>", "ap_int<2>", "ap_ufixed<8,3,AP_RND,AP_SAT>", "ap_fixed<14,-7,AP_TRN,AP_WRAP>"):
        assert str(FixedType.parse(text)) == text
    assert str(Precision.from_string(WIDE)) == WIDE
    with_overrides = f"{WIDE};dense4.result=ap_fixed<18,8,AP_RND,AP_SAT>;relu1.result=ap_fixed<12,5,AP_TRN,AP_SAT>"
    precision = Precision.from_string(with_overrides)
    assert str(precision) == with_overrides and Precision.from_string(str(precision)) == precision
    assert precision.result_type("dense4").width == 18 and precision.result_type("dense2") == precision.result
    assert str(Precision.from_string("ap_fixed<12,5>")) == "ap_fixed<12,5,AP_TRN,AP_WRAP>"
    for bad, message in (("ap_fixed<14,6,AP_RND_CONV,AP_SAT>", "not supported"), ("float", "not an ap_fixed"),
                         ("ap_uint<8>", "signed"), ("ap_fixed<30,6>", "float32"),
                         (f"{WIDE};dense1.accum=ap_fixed<20,8>", "result|weight|bias")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            Precision.from_string(bad)


def test_design_loads_and_emulates_without_hls4ml_or_torch(compiled, exported):
    _, design, _, path = compiled[WIDE]
    hw = full_range(300, seed=9)
    code = ("import json, sys; from l1refit.deploy.fpga.design import Design; "
            "from l1refit.deploy.fpga.emulate import emulate; "
            f"out = emulate(Design.load({str(path / hls.DESIGN_FILE)!r}), json.loads(sys.stdin.read())); "
            "assert 'hls4ml' not in sys.modules and 'torch' not in sys.modules, 'heavy import'; "
            "print(json.dumps(out.tolist()))")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], input=json.dumps(hw.tolist()), capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert np.array_equal(np.array(json.loads(run.stdout)), emulate(design, hw))
    with pytest.raises(ValueError, match="unknown layer.s. dense9"):
        build_design(compiled[WIDE][0], f"{WIDE};dense9.result=ap_fixed<16,6>")


def test_clear_errors(exported, compiled, tmp_path, monkeypatch):
    _, design, _, _ = compiled[WIDE]
    with pytest.raises(ValueError, match=r"input hwPt: value 512 is not an integer of ap_uint<9> \[0, 511\]"):
        emulate(design, [[10, 5, 512, 1]])
    with pytest.raises(ValueError, match="charge: value 0.5"):
        emulate(design, [[10, 5, 20, 0.5]])
    not_design = tmp_path / "other.json"
    not_design.write_text('{"format": "something"}')
    with pytest.raises(ValueError, match="other.json: not an FPGA design"):
        Design.load(not_design)
    model = exported[3]
    spec_f = ModelSpec("logcosh", "adam", None, "softmax", "linear")  # model F of Table 1
    softmax = TrainedModel(build_mlp(4, 3, spec_f), model.x_scaler, model.y_scaler, spec_f, model.inputs)
    with pytest.raises(ValueError, match="model F: no firmware for hidden activation 'softmax'"):
        firmware_model(softmax, "F")
    no_phi = TrainedModel(model.module, model.x_scaler, model.y_scaler, model.spec, ("hwEta", "hwEtaAtVtx", "hwPt",
                                                                                      "charge"))  # fmt: skip
    with pytest.raises(ValueError, match="without input.s. hwPhiAtVtx"):
        firmware_model(no_phi)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(L1RefitError, match=r"g\+\+ not found on PATH.*install g\+\+"):
        hls.convert(compiled[WIDE][0], WIDE, tmp_path / "prj", part=PART, clock_period=4.0)
    assert not (tmp_path / "prj").exists()


def test_da4ml_logic_equals_the_emulator_and_gives_estimates(compiled, tmp_path):
    hw = full_range(5000, seed=4)
    estimates = {}
    for precision in (WIDE, NARROW):
        design = compiled[precision][1]
        comb = rtl.trace(design)
        assert np.array_equal(rtl.predict(comb, design, hw), emulate(design, hw))
        estimates[precision] = rtl.estimate(comb, latency_cutoff=5.0)
    wide, narrow = estimates[WIDE], estimates[NARROW]
    assert 0 < narrow["luts_estimate"] < wide["luts_estimate"] and 0 < narrow["ffs_estimate"] < wide["ffs_estimate"]
    assert wide["stages"] >= 2
    rtl.write_verilog(comb, tmp_path / "rtl", latency_cutoff=5.0, clock_period=4.0, part=PART)
    metadata = json.loads((tmp_path / "rtl" / "metadata.json").read_text())
    assert metadata["reg_bits"] == narrow["ffs_estimate"] and (tmp_path / "rtl" / "src" / "l1refit_nn.v").is_file()


def test_verilator_simulation_of_the_verilog_equals_the_emulator(compiled, exported, tmp_path):
    """The pipelined Verilog, verilated and clocked row by row, gives the emulator's outputs on full-range inputs
    (saturating and wrapping designs). Without Verilator this skips, except in CI (``make test`` installs it)."""
    import os

    import pandas as pd
    import torch

    from l1refit.deploy.fpga import rtlsim
    from l1refit.stages.fpga import fpga_rtl_simulation

    try:
        rtlsim.verilator_version()
    except rtlsim.VerilatorMissing as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))
    model = compiled[WIDE][0]
    spec = ModelSpec("logcosh", "adam", None, "relu", "linear", hidden=(6, 6))  # small: verilated in seconds
    torch.manual_seed(0)
    small = TrainedModel(build_mlp(4, 3, spec), exported[3].x_scaler, exported[3].y_scaler, spec, model.inputs)
    hw = full_range(3000, seed=6)
    for precision, units in UNITS.items():
        design = build_design(firmware_model(small, units=units), precision)
        comb = rtl.trace(design)
        path = tmp_path / units
        rtl.write_verilog(comb, path, latency_cutoff=1.0, clock_period=4.0, part=PART)
        assert len(list((path / "src").glob("l1refit_nn_stage*.v"))) >= 2  # pipelined: clocked, not only summed
        if precision == WIDE:  # through the rule's stage function: the check and its record
            design.save(tmp_path / "design.json")
            pd.DataFrame(hw, columns=list(design.inputs)).to_parquet(tmp_path / "rows.parquet")
            fpga_rtl_simulation(rtl_dir=str(path), design=str(tmp_path / "design.json"),
                                skim=str(tmp_path / "rows.parquet"), result=str(tmp_path / "sim.json"), threads=2,
                                fpga={"rtl_simulation": "required", "check_rows": len(hw)})  # fmt: skip
            record = json.loads((tmp_path / "sim.json").read_text())
            assert record["status"] == "passed" and record["rows"] == len(hw) and "Verilator" in record["verilator"]
        else:
            assert np.array_equal(rtlsim.simulate(path, comb, hw, jobs=2), emulate(design, hw)), precision
