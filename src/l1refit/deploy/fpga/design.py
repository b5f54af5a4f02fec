"""A fixed-point design: the firmware model's weights as integer mantissas with their types, saved as JSON.

The design is the single description both the HLS project (:mod:`l1refit.deploy.fpga.hls`) and the emulator
(:mod:`l1refit.deploy.fpga.emulate`) are made from, so they compute with the same constants; it loads without
hls4ml or torch, which is what lets ``refit`` apply the firmware without compiling anything.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from l1refit.deploy.fpga.fixed import FixedType, Precision
from l1refit.deploy.fpga.hardware import PHYSICS_INPUTS, OutputUnits, input_types
from l1refit.formats.output import atomic_path

if TYPE_CHECKING:
    from l1refit.deploy.fpga.firmware import FirmwareModel

DESIGN_FORMAT = "l1refit-fpga-design/1"


@dataclass
class Layer:
    """One dense layer: mantissas of weights (out, in) and biases with their types, then an optional ReLU."""

    name: str
    weight: np.ndarray
    weight_type: FixedType
    bias: np.ndarray
    bias_type: FixedType
    result_type: FixedType
    relu: str | None = None  # the name of the ReLU layer after it
    relu_type: FixedType | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name, "weight": self.weight.astype(np.int64).tolist(), "weight_type": str(self.weight_type),
            "bias": self.bias.astype(np.int64).tolist(), "bias_type": str(self.bias_type),
            "result_type": str(self.result_type), "relu": self.relu,
            "relu_type": None if self.relu_type is None else str(self.relu_type),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> Layer:
        relu_type = data.get("relu_type")
        return cls(data["name"], np.asarray(data["weight"], np.float64), FixedType.parse(data["weight_type"]),
                   np.asarray(data["bias"], np.float64), FixedType.parse(data["bias_type"]),
                   FixedType.parse(data["result_type"]), data.get("relu"),
                   None if relu_type is None else FixedType.parse(relu_type))  # fmt: skip


class DenseNetwork:
    """What every fixed-point design has: ``layers`` on the hardware integers ``inputs`` (the regression's
    :class:`Design`, the fake classifier's :class:`l1refit.deploy.fpga.fakeid.FakeDesign`); the emulator, hls4ml and
    da4ml read only this. Each subclass gives ``to_dict``/``from_dict`` (its JSON format); saving and loading are
    shared."""

    layers: list[Layer]
    inputs: tuple[str, ...]
    precision: str
    required_inputs: ClassVar[tuple[str, ...]] = PHYSICS_INPUTS  # what the outputs need among the inputs

    @property
    def input_types(self) -> tuple[FixedType, ...]:
        return input_types(self.inputs, self.required_inputs)

    @property
    def input_type(self) -> FixedType:
        """The one type of the HLS input array: the narrowest integer type holding every input's type."""
        kinds = self.input_types
        signed = any(kind.signed for kind in kinds)
        width = max(kind.width + (signed and not kind.signed) for kind in kinds)
        return FixedType(width, width, signed)

    @property
    def output_type(self) -> FixedType:
        return self.layers[-1].result_type

    def save(self, path: str | Path) -> None:
        """The design as one line of JSON, written atomically."""
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: str | Path):
        """A saved design; a file that cannot be read or parsed, or of another format, is a ValueError naming it."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot read an FPGA design: {err}") from err
        return cls.from_dict(data, str(path))

    def to_torch(self):
        """A float32 ``nn.Sequential`` whose weights are exactly the quantised constants: what hls4ml converts."""
        import torch
        from torch import nn

        modules = []
        for layer in self.layers:
            dense = nn.Linear(layer.weight.shape[1], layer.weight.shape[0])
            with torch.no_grad():  # exact: at most 24 significant bits (fixed.MAX_WEIGHT_WIDTH)
                dense.weight.copy_(torch.as_tensor(layer.weight_type.to_float(layer.weight), dtype=torch.float32))
                dense.bias.copy_(torch.as_tensor(layer.bias_type.to_float(layer.bias), dtype=torch.float32))
            modules.append((layer.name, dense))
            if layer.relu:
                modules.append((layer.relu, nn.ReLU()))
        return nn.Sequential(OrderedDict(modules)).eval()


@dataclass
class Design(DenseNetwork, OutputUnits):
    """The fixed-point network on the hardware integers ``inputs``; outputs are the corrections (firmware.py)."""

    layers: list[Layer]
    inputs: tuple[str, ...]
    pt_target: str
    precision: str
    model_id: str = ""
    units: str = "physical"

    def physical(self, outputs: np.ndarray) -> np.ndarray:
        """Design outputs as the corrections in rad, η, GeV (or a fraction of the L1 pT), what ONNX subtracts."""
        return np.asarray(outputs, dtype=np.float64) * np.asarray(self.output_scale)

    def to_dict(self) -> dict:
        return {
            "format": DESIGN_FORMAT, "model_id": self.model_id, "precision": self.precision,
            "inputs": list(self.inputs), "input_types": [str(k) for k in self.input_types],
            "input_type": str(self.input_type), "pt_target": self.pt_target, "units": self.units,
            "output_units": self.output_units, "layers": [layer.to_dict() for layer in self.layers],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict, source: str = "design") -> Design:
        if data.get("format") != DESIGN_FORMAT:
            raise ValueError(f"{source}: not an FPGA design ({DESIGN_FORMAT!r}), format {data.get('format')!r}")
        layers = [Layer.from_dict(layer) for layer in data["layers"]]
        return cls(layers, tuple(data["inputs"]), data["pt_target"], data["precision"], data.get("model_id", ""),
                   data.get("units", "physical"))  # fmt: skip


def build_layers(dense_layers, precision: Precision) -> list[Layer]:
    """Quantise ``(name, weight, bias, relu)`` per dense layer (``FirmwareModel.dense_layers``) to ``precision``;
    an override naming no layer is an error."""
    layers = []
    for name, weight, bias, relu in dense_layers:
        w_type = precision.constant_type(name, "weight", weight)
        b_type = precision.constant_type(name, "bias", bias)
        result = precision.result_type(name)
        relu_name = name.replace("dense", "relu") if relu else None
        relu_type = (precision.override(relu_name, "result") or result) if relu else None
        layers.append(Layer(name, w_type.quantize(weight), w_type, b_type.quantize(bias), b_type, result, relu_name,
                            relu_type))  # fmt: skip
    known = {layer.name for layer in layers} | {layer.relu for layer in layers if layer.relu}
    unknown = sorted({key.split(".")[0] for key, _ in precision.overrides} - known)
    if unknown:
        raise ValueError(f"precision {precision}: override(s) for unknown layer(s) {', '.join(unknown)} "
                         f"(layers: {', '.join(sorted(known))})")  # fmt: skip
    return layers


def build_design(firmware: FirmwareModel, precision: Precision | str) -> Design:
    """Quantise the firmware model's constants to ``precision`` (fixed.Precision: types per layer)."""
    if isinstance(precision, str):
        precision = Precision.from_string(precision)
    layers = build_layers(firmware.dense_layers(), precision)
    return Design(layers, firmware.inputs, firmware.pt_target, str(precision), firmware.model_id, firmware.units)
