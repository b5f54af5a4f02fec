"""The HLS project of a firmware model with hls4ml 1.3, its C simulation, and the emulator-vs-C-simulation check.

Vitis backend, ``io_parallel``, Latency strategy, reuse factor 1 (fully parallel, II = 1), one configuration entry
per layer (``granularity='name'``) carrying the design's types (:mod:`l1refit.deploy.fpga.design`). BatchNorm is
already fused into the dense layers (firmware.py), so every layer type can be set explicitly; only the accumulators
stay 'auto', which hls4ml makes wide enough to be exact. ``compile`` writes the project (``build_prj.tcl`` for
Vivado/Vitis, which are not needed here) and builds the C simulation with g++.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from l1refit.deploy.fpga.design import DenseNetwork, build_design
from l1refit.deploy.fpga.emulate import emulate_mantissas
from l1refit.deploy.fpga.firmware import FirmwareModel
from l1refit.deploy.fpga.fixed import Precision
from l1refit.errors import L1RefitError

log = logging.getLogger(__name__)

PROJECT = "l1refit_nn"  # the top function and file names of the HLS project
DESIGN_FILE = "design.json"  # the design beside the project: what the emulator and `refit --firmware` load


class CompilerMissing(L1RefitError, RuntimeError):
    """No C++ compiler for hls4ml's C simulation."""


def check_compiler() -> str:
    """The path of g++, or one clear error saying what to install."""
    path = shutil.which("g++")
    if path is None:
        raise CompilerMissing("g++ not found on PATH: hls4ml builds the firmware's C simulation with it; install g++ "
                              "(Debian/Ubuntu: apt-get install g++)")  # fmt: skip
    return path


def hls_config(design: DenseNetwork, module) -> dict:
    """hls4ml's per-layer configuration of ``module`` (``design.to_torch()``) with the design's types."""
    import hls4ml

    config = hls4ml.utils.config_from_pytorch_model(
        module, (len(design.inputs),), granularity="name", backend="Vitis",
        default_precision=str(design.layers[0].result_type), default_reuse_factor=1,
    )  # fmt: skip
    config["Model"].update(Strategy="Latency", ReuseFactor=1)
    layers = config["LayerName"]
    named = {layer.name for layer in design.layers} | {layer.relu for layer in design.layers if layer.relu}
    (input_name,) = set(layers) - named
    layers[input_name]["Precision"]["result"] = str(design.input_type)
    for layer in design.layers:
        layers[layer.name]["Precision"].update(
            weight=str(layer.weight_type), bias=str(layer.bias_type), result=str(layer.result_type), accum="auto"
        )
        if layer.relu:
            layers[layer.relu]["Precision"]["result"] = str(layer.relu_type)
    return config


def convert(firmware: FirmwareModel, precision: Precision | str, output_dir: str | Path, *, part: str,
            clock_period: float):  # fmt: skip
    """The compiled hls4ml model of ``firmware`` at ``precision``; ``output_dir`` gets the HLS project and
    ``design.json`` (the quantised design, :class:`~l1refit.deploy.fpga.design.Design`)."""
    return convert_design(build_design(firmware, precision), output_dir, part=part, clock_period=clock_period)


def convert_design(design: DenseNetwork, output_dir: str | Path, *, part: str, clock_period: float):
    """The compiled hls4ml model of a built design (the regression's or the fake classifier's); ``output_dir``
    gets the HLS project and the design as ``design.json``."""
    import hls4ml

    check_compiler()
    module = design.to_torch()
    output_dir = Path(output_dir)
    hls_model = hls4ml.converters.convert_from_pytorch_model(
        module, hls_config=hls_config(design, module), output_dir=str(output_dir), project_name=PROJECT,
        backend="Vitis", io_type="io_parallel", part=part, clock_period=clock_period,
    )  # fmt: skip
    hls_model.compile()
    design.save(output_dir / DESIGN_FILE)
    return hls_model


def csim(hls_model, hw) -> np.ndarray:
    """hls4ml's C simulation of the design on raw integers ``hw`` (N, n_inputs): the outputs (N, n_out), float64."""
    return np.asarray(hls_model.predict(np.ascontiguousarray(hw, dtype=np.float64)), dtype=np.float64)


def check_bit_exact(design: DenseNetwork, hls_model, hw) -> int:
    """Compare the emulator with the C simulation on ``hw``; a ``RuntimeError`` on any differing bit, else N."""
    want = csim(hls_model, hw).reshape(len(hw), -1)
    got = design.output_type.to_float(emulate_mantissas(design, hw))
    differ = np.any(got != want, axis=1)
    if np.any(differ):
        first = int(np.argmax(differ))
        raise RuntimeError(
            f"design {design.precision}: emulator and hls4ml C simulation differ on {differ.sum()} of {len(hw)} "
            f"inputs; first {np.asarray(hw)[first].tolist()}: {got[first]} vs {want[first]}"
        )
    return len(hw)
