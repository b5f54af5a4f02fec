"""The paper's MLP (§3.1, Table 1) in PyTorch, built and trained as Keras did, and the torch settings it runs under.

Keras (2.2/2.3 era) initialisation, BatchNorm, losses and regularisation; where PyTorch's defaults differ, the
code follows Keras and says so where it does (docs/training.md lists every such choice).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from l1refit.ml.spec import KERAS_EPSILON, LOSSES, ModelSpec, check_choice

BN_MOMENTUM = 0.01  # Keras BatchNormalization(momentum=0.99): PyTorch weighs the new batch instead
BN_EPSILON = 1e-3  # Keras BatchNormalization(epsilon=1e-3); PyTorch's default is 1e-5
EVAL_CHUNK = 65536  # rows per inference call: large enough to amortise Python overhead, small enough to stay in cache


# ---------------------------------------------------------------------------------------------------------------
# network


class _Softmax(nn.Module):
    """Keras ``Dense(activation="softmax")`` on a 2-D tensor: softmax over the layer's units (the last axis)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "softmax": _Softmax(), "linear": nn.Identity()}[name]


def _keras_dense(n_in: int, n_out: int) -> nn.Linear:
    """``nn.Linear`` initialised as Keras' Dense: glorot_uniform kernel, zero bias (PyTorch uses kaiming/fan-in)."""
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def build_mlp(n_inputs: int, n_outputs: int, spec: ModelSpec) -> nn.Sequential:
    """Dense → BatchNorm → activation per hidden layer (BN before each activation, §3.1), then Dense → output act.

    The hidden Dense layers keep their bias, as a Keras ``Dense`` does by default even in front of BatchNorm (it is
    redundant there but is what the paper's Keras model had, and it is cheap).
    """
    layers: list[nn.Module] = []
    width = n_inputs
    for units in spec.hidden:
        layers += [
            _keras_dense(width, units),
            nn.BatchNorm1d(units, momentum=BN_MOMENTUM, eps=BN_EPSILON),
            _activation(spec.hidden_activation),
        ]
        width = units
    layers += [_keras_dense(width, n_outputs), _activation(spec.output_activation)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------------------------
# losses and regularisation

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((pred - target) ** 2)


def _msle(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Keras: ``mean(square(log(clip(y_pred, ε, None) + 1) − log(clip(y_true, ε, None) + 1)))``, ε = 1e-7."""
    first = torch.log1p(torch.clamp(pred, min=KERAS_EPSILON))
    second = torch.log1p(torch.clamp(target, min=KERAS_EPSILON))
    return torch.mean((first - second) ** 2)


def _logcosh(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Keras' form ``x + softplus(−2x) − log 2``: exact log(cosh x) without overflow of cosh for large |x|."""
    x = pred - target
    return torch.mean(x + functional.softplus(-2.0 * x) - math.log(2.0))


def _elementwise(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if name == "mse":
        return (pred - target) ** 2
    if name == "msle":
        first = torch.log1p(torch.clamp(pred, min=KERAS_EPSILON))
        return (first - torch.log1p(torch.clamp(target, min=KERAS_EPSILON))) ** 2
    x = pred - target
    return x + functional.softplus(-2.0 * x) - math.log(2.0)


def make_sample_loss(name: str) -> Loss:
    """Loss callable ``(pred, target) → (N,)``: each row's loss (the mean over its outputs), the same formulas as
    :func:`make_loss`; what sample weights multiply (Keras' ``sample_weight``)."""
    check_choice("loss", name, LOSSES)
    return lambda pred, target: _elementwise(name, pred, target).mean(dim=1)


def make_loss(name: str) -> Loss:
    """Loss callable ``(pred, target) → scalar``: the mean over all elements, as Keras' per-sample mean then batch mean
    (the same number, since every sample has the same number of outputs)."""
    check_choice("loss", name, LOSSES)
    return {"mse": _mse, "msle": _msle, "logcosh": _logcosh}[name]


def regularization_penalty(module: nn.Module, reg: dict | None) -> torch.Tensor:
    """λ1·Σ|W| + λ2·ΣW² over the kernels (``nn.Linear`` weights) only, as Keras' ``kernel_regularizer`` adds it.

    Keras' ``l2(λ)`` is λ·ΣW² with no factor 1/2 (unlike weight decay); biases and BatchNorm parameters carry no
    regulariser. Every Dense layer, the output layer included, has the regulariser.
    """
    penalty = torch.zeros(())
    if not reg:
        return penalty
    kernels = [layer.weight for layer in module.modules() if isinstance(layer, nn.Linear)]
    l1, l2 = reg.get("l1", 0.0), reg.get("l2", 0.0)
    for weight in kernels:
        if l1:
            penalty = penalty + l1 * weight.abs().sum()
        if l2:
            penalty = penalty + l2 * (weight * weight).sum()
    return penalty


# ---------------------------------------------------------------------------------------------------------------
# torch settings


@contextlib.contextmanager
def torch_settings(threads: int) -> Iterator[None]:
    """Deterministic algorithms and ``threads`` intra-op threads for the block; the previous settings come back.

    The thread count is part of the determinism contract: a float32 reduction split over another number of threads
    may round differently.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    old_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_deterministic, warn_only=old_warn_only)


def as_tensor(x: np.ndarray) -> torch.Tensor:
    """The array as a C-contiguous float32 tensor, the dtype the network computes in."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
