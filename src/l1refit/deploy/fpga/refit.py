"""``l1refit refit --firmware``: the emulated fixed-point design in the place of the ONNX model.

:class:`Firmware` has the interface :func:`l1refit.deploy.refit.refit_file` uses of an ONNX ``Model`` (``path``,
``inputs``, ``metadata``, ``model(x)`` → (N, 3) φ, η, pT), so every input and output of the refit works unchanged;
the values are what the board computes: the design's outputs bit for bit (:mod:`.emulate`), applied to the L1 values
as the ONNX graph applies its corrections (:func:`.hardware.corrected`). Torch- and hls4ml-free (docs/deploy.md §6.7).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from l1refit.deploy.engine import InputError, RefitError
from l1refit.deploy.fpga.design import DESIGN_FORMAT, Design
from l1refit.deploy.fpga.emulate import emulate, plan
from l1refit.deploy.fpga.hardware import corrected

ENGINE = "firmware"  # ``l1refit.refit.engine`` of the output: the emulated design, not onnxruntime


@dataclass(frozen=True)
class Firmware:
    """A loaded design, called like an ONNX ``Model``: ``firmware(hw)`` gives the corrected (N, 3) φ, η, pT."""

    path: Path
    design: Design
    metadata: dict[str, str] = field(default_factory=dict)
    threads: int = 1  # BLAS threads of the emulator's sums (more than the free cores is several times slower)
    dtype: ClassVar[np.dtype] = np.dtype(np.float64)  # the refit passes the integers as float64: nothing rounded
    graph: ClassVar[str] = ENGINE  # what refit_file reports as the graph that ran

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.design.inputs

    @property
    def refit_metadata(self) -> dict[str, str]:
        """What the output says about the engine: the firmware, its precision, units and design format."""
        return {
            "l1refit.refit.engine": ENGINE,
            "l1refit.refit.firmware_precision": self.design.precision,
            "l1refit.refit.firmware_units": self.design.units,
            "l1refit.refit.firmware_format": DESIGN_FORMAT,
        }

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Corrected φ (wrapped), η, pT (GeV) in float64; integers outside their uGMT types are an InputError."""
        design = self.design
        try:
            with threadpool_limits(self.threads):
                outputs = emulate(design, x)  # its only ValueError left: check_hw's (load_firmware ran plan)
        except ValueError as err:
            raise InputError(f"{err}; the firmware takes the uGMT hardware integers (a corrupt file?)") from None
        return corrected(x, design.physical(outputs), design.inputs, design.pt_target)


def load_firmware(path: str | os.PathLike, *, threads: int = 1) -> Firmware:
    """The design JSON at ``path`` (written by the workflow at results/fpga/{model}/design.json) as a refit model
    whose emulator uses ``threads`` BLAS threads.

    A file that is not a complete, consistent design (format, layer shapes from the inputs to the three outputs, types
    the emulator computes exactly) is a one-line :class:`RefitError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such design file")
    try:
        design = Design.load(path)
    except ValueError as err:  # its own messages name the file; a parse error of a type or a value does not
        message = _first_line(err)
        prefix = "" if message.startswith(str(path)) else f"{path}: not an FPGA design file: "
        raise RefitError(prefix + message) from None
    except (KeyError, TypeError, AttributeError, IndexError) as err:  # a JSON value without a design's fields
        raise RefitError(
            f"{path}: not an FPGA design file ({DESIGN_FORMAT}): {type(err).__name__} {err} reading its fields"
        ) from None
    try:
        _check_shapes(design)
        plan(design)  # the input types are known and every accumulator is exact in float64
    except ValueError as err:
        raise RefitError(f"{path}: not a usable FPGA design: {_first_line(err)}") from None
    metadata = {"model_id": design.model_id, "precision": design.precision, "units": design.units}
    return Firmware(path, design, metadata, threads)


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _check_shapes(design: Design) -> None:
    """Each layer takes what the one before gives, from the inputs to the three corrections (φ, η, pT)."""
    width = len(design.inputs)
    for layer in design.layers:
        n_out = layer.weight.shape[0] if layer.weight.ndim == 2 else -1
        if layer.weight.ndim != 2 or layer.weight.shape[1] != width or layer.bias.shape != (n_out,):
            raise ValueError(f"layer {layer.name} has weights {layer.weight.shape} and biases {layer.bias.shape} "
                             f"after {width} values")  # fmt: skip
        if (layer.relu is None) != (layer.relu_type is None):  # the emulator would apply a ReLU without one
            raise ValueError(f"layer {layer.name} has relu {layer.relu!r} but relu_type {layer.relu_type}")
        width = n_out
    if not design.layers or width != 3:
        raise ValueError(f"it gives {width} outputs, a refit needs 3 (φ, η, pT)")
