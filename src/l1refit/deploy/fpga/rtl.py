"""The design as logic with da4ml: resource and pipeline estimates and Verilog, without vendor tools.

da4ml turns the fixed-point network into adders and shifts (distributed arithmetic: every multiplication by a
constant weight becomes a few additions) and estimates its cost in LUTs; cut into pipeline stages at a latency
cut-off (da4ml's delay units, roughly one adder each), the registers between stages give the flip-flop estimate.
These are estimates, not synthesis results (docs/deploy.md §6). ``predict`` of the traced logic is bit-exact and
equals :func:`l1refit.deploy.fpga.emulate.emulate` (a test checks it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from l1refit.deploy.fpga.design import DenseNetwork
from l1refit.deploy.fpga.fixed import FixedType
from l1refit.deploy.fpga.hardware import check_hw

PROJECT = "l1refit_nn"


def _kif(kind: FixedType) -> tuple[int, int, int]:
    """da4ml's (sign bit, integer bits without the sign, fractional bits)."""
    return int(kind.signed), kind.integer - int(kind.signed), kind.frac


def _quantize(x, kind: FixedType):
    from da4ml.trace.ops import quantize

    return quantize(x, *_kif(kind), overflow_mode=kind.overflow.removeprefix("AP_"),
                    round_mode=kind.rounding.removeprefix("AP_"))  # fmt: skip


def trace(design: DenseNetwork):
    """da4ml's combinational logic (``CombLogic``) of the design: the same arithmetic as the emulator."""
    from da4ml.trace import FixedVariableArrayInput, comb_trace
    from da4ml.trace.ops import relu

    inputs = FixedVariableArrayInput(len(design.inputs))
    kifs = np.array([_kif(kind) for kind in design.input_types])
    x = inputs.quantize(kifs[:, 0], kifs[:, 1], kifs[:, 2])  # wrap: integers inside their hardware types
    for layer in design.layers:
        weight = layer.weight_type.to_float(layer.weight).T
        x = _quantize(x @ weight + layer.bias_type.to_float(layer.bias), layer.result_type)
        if layer.relu:
            x = relu(x)
            if layer.relu_type != layer.result_type:
                x = _quantize(x, layer.relu_type)
    return comb_trace(inputs, x)


def estimate(comb, latency_cutoff: float) -> dict[str, float]:
    """LUTs (da4ml's cost), flip-flops (pipeline register bits) and pipeline stages at ``latency_cutoff``."""
    from da4ml.trace import to_pipeline

    pipe = to_pipeline(comb, latency_cutoff, verbose=False)
    return {"luts_estimate": float(comb.cost), "ffs_estimate": float(pipe.reg_bits),
            "stages": len(pipe.solutions), "latency_cutoff": float(latency_cutoff)}  # fmt: skip


def predict(comb, design: DenseNetwork, hw) -> np.ndarray:
    """da4ml's bit-exact evaluation of the traced logic on raw integers ``hw``: the design outputs, float64."""
    hw = check_hw(hw, design.inputs, design.input_types)
    return np.asarray(comb.predict(np.ascontiguousarray(hw)), dtype=np.float64)


def write_verilog(comb, output_dir: str | Path, *, latency_cutoff: float, clock_period: float, part: str) -> Path:
    """The pipelined Verilog project (sources, Vivado build scripts, timing constraints) in ``output_dir``."""
    from da4ml.codegen import RTLModel

    output_dir = Path(output_dir)
    RTLModel(comb, PROJECT, output_dir, flavor="verilog", latency_cutoff=latency_cutoff, print_latency=False,
             part_name=part, clock_period=clock_period).write()  # fmt: skip
    return output_dir
