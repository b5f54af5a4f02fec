"""The firmware model: a trained MLP as plain dense layers that read the raw uGMT integers and give the corrections.

The FPGA receives the hardware integers of the uGMT muon word, not normalised floats, and the board should not spend
logic on scaling: the input min-max normalisation is folded into the first dense layer, each BatchNorm into the dense
layer before it (inference mode), and the target de-normalisation into the last one — the same folding as the
optimised ONNX graph (docs/deploy.md §3). What remains, ``dense1, relu1, …, dense<n>``, is what hls4ml converts.

Outputs are the predicted L1 − offline offsets the ONNX graph computes before it applies them to the L1 values
(docs/deploy.md §1): Δφ in rad, Δη (η units), ΔpT in GeV (``pt_target`` "absolute") or as a fraction of the L1 pT
("relative"); :func:`l1refit.deploy.fpga.hardware.corrected` applies them as the graph does.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_eval

from l1refit.deploy.fpga.hardware import OutputUnits, input_types, output_scale
from l1refit.deploy.onnx_export import fold_scalers
from l1refit.ml.checkpoint import TrainedModel


@dataclass
class FirmwareModel(OutputUnits):
    """``module`` (float64 ``nn.Sequential``: dense1, relu1, …, dense<n>) on the raw integers ``inputs``.

    One output unit is ``output_scale`` physical units per output (all 1 for ``units`` "physical"; the uGMT LSBs
    for "hardware", which gives Δφ, Δη and ΔpT comparable ranges in one fixed-point output type).
    """

    module: nn.Sequential
    inputs: tuple[str, ...]
    pt_target: str
    model_id: str = ""
    units: str = "physical"

    def dense_layers(self) -> list[tuple[str, np.ndarray, np.ndarray, bool]]:
        """``(name, weight (out, in), bias, followed by a ReLU)`` per dense layer, float64 copies."""
        children = list(self.module.named_children())
        return [(name, layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy(),
                 index + 1 < len(children) and isinstance(children[index + 1][1], nn.ReLU))
                for index, (name, layer) in enumerate(children) if isinstance(layer, nn.Linear)]  # fmt: skip

    def predict(self, hw) -> np.ndarray:
        """The float64 outputs (N, 3), in the model's units, for raw integers ``hw`` (N, n_inputs)."""
        with torch.inference_mode():
            return self.module(torch.from_numpy(np.array(hw, dtype=np.float64))).numpy()


def _check_spec(model: TrainedModel, name: str) -> None:
    spec = model.spec
    if spec.hidden_activation != "relu" or spec.output_activation != "linear":
        raise ValueError(
            f"model {name or '?'}: no firmware for hidden activation {spec.hidden_activation!r} / output activation "
            f"{spec.output_activation!r}: the fixed-point design supports ReLU hidden layers and a linear output "
            "(a softmax needs lookup tables the emulator does not model; a ReLU output blocks the de-normalisation "
            "fold)"
        )


def firmware_model(model: TrainedModel, model_id: str = "", units: str = "physical") -> FirmwareModel:
    """The firmware model of ``model`` (see the module docstring); ReLU hidden layers and a linear output only."""
    input_types(model.inputs)
    name = model_id or str(model.metadata.get("model", ""))
    _check_spec(model, name)
    scale = np.asarray(output_scale(model.pt_target, units))
    blocks = list(copy.deepcopy(model.module).double().eval().children())
    dense = []
    for index, layer in enumerate(blocks):
        if isinstance(layer, nn.Linear):
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            if isinstance(following, nn.BatchNorm1d):
                layer = fuse_linear_bn_eval(layer, following)
            dense.append([layer.weight.detach().numpy(), layer.bias.detach().numpy()])
    x, y = model.x_scaler, model.y_scaler
    # in output units: (y·y_scale + y_min) / scale
    w1, b1, w_last, b_last = fold_scalers(dense[0], dense[-1], x.data_min, x.scale, y.data_min / scale,
                                          y.scale / scale)  # fmt: skip
    dense[0], dense[-1] = [w1, b1], [w_last, b_last]
    layers: list[tuple[str, nn.Module]] = []
    for index, (weight, bias) in enumerate(dense, start=1):
        plain = nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
        with torch.no_grad():
            plain.weight.copy_(torch.from_numpy(weight)), plain.bias.copy_(torch.from_numpy(bias))
        layers.append((f"dense{index}", plain))
        if index < len(dense):
            layers.append((f"relu{index}", nn.ReLU()))
    module = nn.Sequential(OrderedDict(layers)).eval()
    return FirmwareModel(module, tuple(model.inputs), model.pt_target, name, units)


def firmware_of_design(design) -> FirmwareModel:
    """The firmware model whose constants are exactly ``design``'s (a quantisation-aware design has no float
    network behind it): :func:`l1refit.deploy.fpga.design.build_design` of it at the design's precision gives
    ``design`` back, which :mod:`l1refit.stages.fpga` checks before it converts it with hls4ml."""
    return FirmwareModel(design.to_torch().double(), tuple(design.inputs), design.pt_target, design.model_id,
                         design.units)  # fmt: skip
