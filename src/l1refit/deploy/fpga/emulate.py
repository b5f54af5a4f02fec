"""Bit-exact emulation of a fixed-point design on whole data sets: the board's outputs for every muon.

hls4ml's C simulation (``predict``) loops over samples through ap_fixed arithmetic (≈ 10⁴ inferences/s); this does
the same integer arithmetic vectorised. Per dense layer (hls4ml ``dense_latency`` with an exact accumulator):
products of input and weight mantissas summed exactly, the bias added at the accumulator's binary point, then one
conversion to the result type (rounding, then saturation or wrap); ReLU keeps the positive mantissas, converted to
its own type. Mantissas are integers in float64, so BLAS does the sums; that is exact while every partial sum stays
below 2⁵² in magnitude, which :func:`plan` proves from the types before it runs (docs/deploy.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l1refit.deploy.fpga.design import DenseNetwork, Design
from l1refit.deploy.fpga.fixed import EXACT, FixedType
from l1refit.deploy.fpga.hardware import check_hw

CHUNK = 32768  # rows per block: the (rows × 32) float64 activations stay in cache


@dataclass
class _Step:
    weight: np.ndarray  # (in, out): the accumulator comes out in units of the result's LSB
    bias: np.ndarray  # at the same binary point, plus one half where AP_RND rounds
    floor: bool  # whether the accumulator has bits below the result's LSB
    result: FixedType
    relu: FixedType | None
    fused: bool  # ReLU of the result's own type: folded into the overflow step


def plan(design: DenseNetwork) -> list[_Step]:
    """The layers as float64 operands scaled to their result's LSB; a ``ValueError`` if float64 could be inexact.

    Scaling by powers of two and adding the rounding half to the bias keep every value exact as long as the
    accumulator, in units of its own LSB, stays below 2⁵² in magnitude: bounded here from the types.
    """
    steps, frac, largest = [], 0, np.array([max(abs(b) for b in k.bounds) for k in design.input_types], np.float64)
    for layer in design.layers:
        w_frac, b_frac, result = layer.weight_type.frac, layer.bias_type.frac, layer.result_type
        acc_frac = max(frac + w_frac, b_frac)
        weight = np.ldexp(layer.weight.T.astype(np.float64), acc_frac - frac - w_frac)
        bias = np.ldexp(layer.bias.astype(np.float64), acc_frac - b_frac)
        bound = float(np.max(largest @ np.abs(weight) + np.abs(bias), initial=0.0))
        if bound >= EXACT:
            raise ValueError(f"design {design.precision}: layer {layer.name} can reach 2^{np.log2(bound):.0f} "
                             "in its accumulator, beyond exact float64 emulation (2^52)")  # fmt: skip
        floor = acc_frac > result.frac
        weight, bias = np.ldexp(weight, result.frac - acc_frac), np.ldexp(bias, result.frac - acc_frac)
        if floor and result.rounding == "AP_RND":
            bias += 0.5
        relu = layer.relu_type
        steps.append(_Step(np.ascontiguousarray(weight), bias, floor, result, relu, relu == result))
        last = relu or result
        frac = last.frac
        largest = np.full(layer.weight.shape[0], float(max(abs(b) for b in last.bounds)))
    return steps


def _run(steps: list[_Step], x: np.ndarray) -> np.ndarray:
    for step in steps:
        acc = x @ step.weight
        acc += step.bias
        if step.floor:
            np.floor(acc, out=acc)
        if step.relu is None or step.fused:
            x = step.result.apply_overflow(acc, low=0.0 if step.fused else None)
        else:
            x = step.relu.requantize(np.maximum(step.result.apply_overflow(acc), 0.0, out=acc), step.result.frac,
                                     inplace=True)  # fmt: skip
    return x


def emulate_mantissas(design: DenseNetwork, hw) -> np.ndarray:
    """The output mantissas (N, n_out), float64 integers of ``design.output_type``, for raw integers ``hw``."""
    x = check_hw(hw, design.inputs, design.input_types)
    steps = plan(design)
    n_out = design.layers[-1].weight.shape[0]
    out = np.empty((len(x), n_out), dtype=np.float64)
    for start in range(0, len(x), CHUNK):
        out[start : start + CHUNK] = _run(steps, x[start : start + CHUNK])
    return out


def emulate(design: Design, hw) -> np.ndarray:
    """What the design outputs for raw integers ``hw`` (N, n_inputs), bit-exact: the corrections (N, 3) in the
    design's units, float64 (``design.physical`` converts them to rad, η, GeV)."""
    return design.output_type.to_float(emulate_mantissas(design, hw))
