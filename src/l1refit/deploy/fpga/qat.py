"""Quantisation-aware training: fine-tune the firmware model through the exact fixed-point arithmetic of a design.

Post-training quantisation rounds a float network's constants and activations to ``ap_fixed`` types after the fact;
quantisation-aware training lets the network learn around the rounding. Here the float network's firmware model
(normalisation folded in, :mod:`.firmware`) is fine-tuned with every constant and every layer result passed through
the design's own types — :meth:`FixedType.quantize` of :mod:`.fixed`, the function the emulator and the design
use — in the forward pass, and a straight-through estimator (the gradient of the rounding taken as 1) backwards.
The forward pass therefore *is* the emulated firmware: :func:`build_design` of the fine-tuned model at the same
precision reproduces it bit for bit, which the tests check.

Why not brevitas → QONNX → hls4ml: that path learns power-of-two scales of its own and needs a second, differently
shaped network in the training stage; here the fine-tuned weights go through the same :func:`build_design`, emulator,
hls4ml conversion and da4ml estimate as every post-training design, so the precision scan compares the two on
equal terms (docs/deploy.md §6.8).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from l1refit.deploy.fpga.firmware import FirmwareModel
from l1refit.deploy.fpga.fixed import FixedType, Precision
from l1refit.ml.checkpoint import TrainedModel
from l1refit.ml.network import make_loss, torch_settings
from l1refit.ml.optimizers import FlatAdam
from l1refit.ml.targets import features, targets

log = logging.getLogger(__name__)


class _Quantize(torch.autograd.Function):
    """Forward: the values as ``kind`` represents them (rounding, overflow). Backward: straight through."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, kind: FixedType) -> torch.Tensor:
        m = kind.quantize(values.detach().numpy())
        return torch.from_numpy(kind.to_float(m))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def quantize(values: torch.Tensor, kind: FixedType) -> torch.Tensor:
    return _Quantize.apply(values, kind)


class QuantizedMLP(nn.Module):
    """The firmware model's dense layers computing as the design ``precision`` does (float64, exact sums).

    The trained parameters are the weights in the float network's units: the firmware's first-layer weights act
    on raw integers (φ ≈ 1/575 per LSB, charge ≈ 1), its last layer's rows are in output LSBs. Each weight is
    ``parameter × unit``, with ``unit`` 1/(input range) per input column and (target range)/(output LSB) per
    output row, so one learning rate suits every weight, as it did in the float training.
    """

    def __init__(self, firmware: FirmwareModel, precision: Precision, input_scale: np.ndarray,
                 output_scale: np.ndarray) -> None:  # fmt: skip
        super().__init__()
        self.precision = precision
        self.params = nn.ParameterDict()
        self.relu: dict[str, bool] = {}
        dense = firmware.dense_layers()
        for index, (name, weight, bias, relu) in enumerate(dense):
            w_unit, b_unit = np.ones_like(weight), np.ones_like(bias)
            if index == 0:
                w_unit = w_unit / np.asarray(input_scale, dtype=np.float64)[None, :]
            if index == len(dense) - 1:
                out = np.asarray(output_scale, dtype=np.float64)
                w_unit, b_unit = w_unit * out[:, None], b_unit * out
            self.register_buffer(f"{name}_wu", torch.from_numpy(w_unit))
            self.register_buffer(f"{name}_bu", torch.from_numpy(b_unit))
            self.params[f"{name}_w"] = nn.Parameter(torch.from_numpy(weight / w_unit))
            self.params[f"{name}_b"] = nn.Parameter(torch.from_numpy(bias / b_unit))
            self.relu[name] = relu

    def constants(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The float weight and bias of layer ``name`` in the firmware's units."""
        return (self.params[f"{name}_w"] * getattr(self, f"{name}_wu"),
                self.params[f"{name}_b"] * getattr(self, f"{name}_bu"))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.precision
        for name, relu in self.relu.items():
            weight, bias = self.constants(name)
            w = quantize(weight, p.constant_type(name, "weight", weight.detach().numpy()))
            b = quantize(bias, p.constant_type(name, "bias", bias.detach().numpy()))
            result = p.result_type(name)
            x = quantize(x @ w.T + b, result)
            if relu:
                x = torch.relu(x)
                relu_type = p.override(name.replace("dense", "relu"), "result") or result
                if relu_type != result:
                    x = quantize(x, relu_type)
        return x

    def to_firmware(self, firmware: FirmwareModel) -> FirmwareModel:
        """A copy of ``firmware`` with the fine-tuned float weights (what :func:`build_design` quantises)."""
        out = copy.deepcopy(firmware)
        with torch.no_grad():
            for name in self.relu:
                weight, bias = self.constants(name)
                target = getattr(out.module, name)
                target.weight.copy_(weight), target.bias.copy_(bias)
        return out


@dataclass(frozen=True)
class QatSettings:
    """The fine-tuning: epochs (with early stopping on the validation loss), learning rate, batch size, seed."""

    epochs: int = 10
    learning_rate: float = 1e-4
    batch_size: int = 1024
    patience: int = 3
    validation_fraction: float = 0.1
    seed: int = 1


def _normalised_targets(model: TrainedModel, rows: pd.DataFrame) -> np.ndarray:
    """The training targets as the float network saw them: clipped to the scaler's range, min-max scaled."""
    y = targets(rows, model.pt_target)
    scaler = model.y_scaler
    return scaler.transform(np.clip(y, scaler.data_min, scaler.data_max))


def qat_finetune(model: TrainedModel, firmware: FirmwareModel, precision: Precision | str, rows: pd.DataFrame,
                 settings: QatSettings, progress: Callable[[str], object] = log.info,
                 ) -> tuple[FirmwareModel, pd.DataFrame]:  # fmt: skip
    """Fine-tune ``firmware`` (of ``model``) quantisation-aware at ``precision`` on ``rows`` (the training folds).

    The loss is the float network's (its spec's loss on the min-max-scaled targets), of the quantised outputs.
    Returns the fine-tuned firmware model at its best validation epoch (epoch 0: the post-training design, so
    fine-tuning never ends worse than where it started) and the history (epoch, loss, val_loss).
    """
    if isinstance(precision, str):
        precision = Precision.from_string(precision)
    x = torch.from_numpy(np.ascontiguousarray(features(rows, firmware.inputs), dtype=np.float64))
    y = torch.from_numpy(_normalised_targets(model, rows))
    scale = torch.from_numpy(np.asarray(firmware.output_scale, dtype=np.float64))
    y_min = torch.from_numpy(model.y_scaler.data_min)
    y_scale = torch.from_numpy(model.y_scaler.scale)
    order = np.random.default_rng(settings.seed).permutation(len(x))
    n_fit = int(len(x) * (1.0 - settings.validation_fraction))
    fit, val = torch.from_numpy(order[:n_fit]), torch.from_numpy(order[n_fit:])
    loss_fn = make_loss(model.spec.loss)
    net = QuantizedMLP(firmware, precision, model.x_scaler.scale, model.y_scaler.scale / scale.numpy())

    def loss_of(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return loss_fn((net(xb) * scale - y_min) / y_scale, yb)

    def validation() -> float:
        with torch.no_grad():
            return float(loss_of(x[val], y[val]))

    rows_out = [(0, math.nan, validation())]
    best = (rows_out[0][2], 0, copy.deepcopy(net.state_dict()))
    progress(f"epoch 0 (post-training design {precision}): val_loss {best[0]:.6e}")
    with torch_settings(1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        generator = torch.Generator().manual_seed(settings.seed)
        optimizer = FlatAdam(net.parameters(), lr=settings.learning_rate)
        for epoch in range(1, settings.epochs + 1):
            perm = fit[torch.randperm(len(fit), generator=generator)]
            total = 0.0
            for start in range(0, len(perm), settings.batch_size):
                batch = perm[start : start + settings.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_of(x[batch], y[batch])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            val_loss = validation()
            rows_out.append((epoch, total / len(perm), val_loss))
            improved = val_loss < best[0]
            if improved:
                best = (val_loss, epoch, copy.deepcopy(net.state_dict()))
            progress(f"epoch {epoch}/{settings.epochs}: loss {total / len(perm):.6e}, val_loss {val_loss:.6e}"
                     + (" (best)" if improved else ""))  # fmt: skip
            if not improved and epoch - best[1] >= settings.patience:
                break
    net.load_state_dict(best[2])
    progress(f"restored epoch {best[1]} (val_loss {best[0]:.6e})")
    return net.to_firmware(firmware), pd.DataFrame(rows_out, columns=["epoch", "loss", "val_loss"])
