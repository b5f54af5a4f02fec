"""The paper's MLP (§3.1, Table 1) in PyTorch, with the Keras behaviour the paper trained with.

The paper used Keras (2.2/2.3 era, TensorFlow backend). Where PyTorch's defaults or update rules differ, this module
follows Keras, and every such choice is stated where it is made:

* Dense kernels glorot_uniform, biases zero (Keras ``Dense`` defaults); BatchNorm gamma 1, beta 0, moving mean 0,
  moving variance 1, momentum 0.99 (PyTorch ``momentum=0.01``: the weight of the *new* batch), epsilon 1e-3.
* Losses as Keras writes them: mean over outputs and samples; ``logcosh`` in Keras' stable form; ``msle`` with
  Keras' clipping at epsilon 1e-7.
* Optimisers with Keras' default hyper-parameters (``K.epsilon()`` = 1e-7 wherever Keras takes ``epsilon=None``) and
  Keras' update rules, which differ from ``torch.optim.Adam`` (ε placement) and from PyTorch's default ε elsewhere.
* L1/L2 kernel regularisation added to the loss as Keras does (λ·Σ|W|, λ·ΣW², no factor 1/2, biases excluded).

Known, deliberate difference: Keras 2.2's TensorFlow backend updates BatchNorm's moving statistics with
``zero_debias=True`` and corrects the batch variance by n/(n − 1 − ε); ``torch.nn.BatchNorm1d`` uses a plain moving
average and n/(n − 1). The moving statistics only matter in inference mode, the variance factors differ by ε/n
(1e-6 at batch 1024), and the zero-debias difference decays like 0.99^steps (below 1e-4 after 1,000 steps, i.e.
within the first epochs here), so the trained networks are not affected in any way this project can measure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

LOSSES = ("mse", "msle", "logcosh")
OPTIMIZERS = ("adam", "adadelta", "adagrad", "sgd")
HIDDEN_ACTIVATIONS = ("relu", "softmax")
OUTPUT_ACTIVATIONS = ("linear", "relu")
REGULARIZATIONS = ("l1", "l2")

KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the fuzz factor of losses and optimisers
BN_MOMENTUM = 0.01  # Keras BatchNormalization(momentum=0.99): PyTorch weighs the new batch instead
BN_EPSILON = 1e-3  # Keras BatchNormalization(epsilon=1e-3); PyTorch's default is 1e-5

# Keras 2.2/2.3 optimiser defaults (keras/optimizers.py), the "default parameters" the paper trained with.
KERAS_DEFAULTS = {
    "adam": {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": KERAS_EPSILON},
    "adadelta": {"lr": 1.0, "rho": 0.95, "epsilon": KERAS_EPSILON},
    "adagrad": {"lr": 0.01, "epsilon": KERAS_EPSILON},
    "sgd": {"lr": 0.01},
}


def _check_choice(key: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key}: unknown value {value!r}; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class ModelSpec:
    """One row of Table 1 plus the hidden-layer widths: everything that defines a network and its training rule."""

    loss: str
    optimizer: str
    regularization: dict | None
    hidden_activation: str
    output_activation: str
    hidden: tuple[int, ...] = (32, 32, 32)

    def __post_init__(self) -> None:
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("hidden_activation", self.hidden_activation, HIDDEN_ACTIVATIONS)
        _check_choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        for key, value in (self.regularization or {}).items():
            _check_choice("regularization", key, REGULARIZATIONS)
            if not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"regularization.{key}: must be a number >= 0, got {value!r}")
        if not self.hidden or any(int(width) < 1 for width in self.hidden):
            raise ValueError(f"hidden: need at least one layer of width >= 1, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(width) for width in self.hidden))

    @classmethod
    def from_config(cls, model_entry: dict, hidden: Iterable[int] = (32, 32, 32)) -> ModelSpec:
        """Build from a ``models:`` entry of the config and ``training.hidden``; unknown keys are errors."""
        fields = ("loss", "optimizer", "regularization", "hidden_activation", "output_activation")
        unknown = sorted(set(model_entry) - set(fields))
        if unknown:
            raise ValueError(f"model entry: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
        missing = [key for key in fields if key != "regularization" and key not in model_entry]
        if missing:
            raise ValueError(f"model entry: missing key(s) {', '.join(missing)}")
        regularization = model_entry.get("regularization")
        return cls(
            loss=model_entry["loss"],
            optimizer=model_entry["optimizer"],
            regularization=dict(regularization) if regularization else None,
            hidden_activation=model_entry["hidden_activation"],
            output_activation=model_entry["output_activation"],
            hidden=tuple(hidden),
        )

    def to_dict(self) -> dict:
        """Plain types only (lists, not tuples), so the spec can be stored in a ``weights_only`` checkpoint."""
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        return cls(**{**data, "hidden": tuple(data["hidden"])})


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


def make_loss(name: str) -> Loss:
    """Loss callable ``(pred, target) → scalar``: the mean over all elements, as Keras' per-sample mean then batch mean
    (the same number, since every sample has the same number of outputs)."""
    _check_choice("loss", name, LOSSES)
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
# optimisers


class KerasAdam(torch.optim.Optimizer):
    """Adam exactly as Keras 2.2/2.3 updates (``keras/optimizers.py``), which differs from ``torch.optim.Adam``.

    Keras folds both bias corrections into the step size and adds ε to the *uncorrected* √v::

        t += 1;  lr_t = lr · √(1 − β2^t) / (1 − β1^t)
        m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²;  p −= lr_t · m / (√v + ε)

    PyTorch adds ε to √v̂ = √v / √(1 − β2^t), i.e. an effective ε larger by 1/√(1 − β2^t) (≈ 32× at t = 1), which
    changes the first steps, where v is small. The moments start at zero, as in Keras. The update uses PyTorch's
    ``_foreach`` kernels: one call per operation for all parameters (the Python per-tensor loop would cost more than
    the arithmetic for a network this small).
    """

    def __init__(self, params, lr: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = KERAS_EPSILON) -> None:  # fmt: skip
        super().__init__(params, {"lr": lr, "beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            states = [self.state[p] for p in params]
            for p, state in zip(params, states, strict=True):
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            ms = [s["m"] for s in states]
            vs = [s["v"] for s in states]
            beta_1, beta_2 = group["beta_1"], group["beta_2"]
            for state in states:
                state["step"] += 1
            t = states[0]["step"]
            lr_t = group["lr"] * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
            torch._foreach_mul_(ms, beta_1)
            torch._foreach_add_(ms, grads, alpha=1.0 - beta_1)
            torch._foreach_mul_(vs, beta_2)
            torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta_2)
            denominators = torch._foreach_sqrt(vs)
            torch._foreach_add_(denominators, group["epsilon"])
            torch._foreach_addcdiv_(params, ms, denominators, value=-lr_t)
        return loss


def make_optimizer(name: str, params) -> torch.optim.Optimizer:
    """The optimiser ``name`` with Keras 2.2/2.3 defaults and update rules (see ``KERAS_DEFAULTS``).

    * adam: :class:`KerasAdam` (ε outside the bias-corrected √v, see there).
    * adadelta: Keras 2.2 does ``a = ρa + (1−ρ)g²; u = g·√(d + ε)/√(a + ε); p −= lr·u; d = ρd + (1−ρ)u²`` with
      ``a, d`` starting at zero: the same algorithm as ``torch.optim.Adadelta``; only ε differs (PyTorch 1e-6, Keras
      1e-7) and is set here.
    * adagrad: Keras 2.2 does ``a += g²; p −= lr·g/(√a + ε)`` with ``a`` starting at 0 and ε outside the square root:
      ``torch.optim.Adagrad`` with ``initial_accumulator_value=0`` (its default) and Keras' ε (PyTorch 1e-10).
      (tf.keras' later Adagrad starts the accumulator at 0.1; the paper's standalone Keras did not.)
    * sgd: plain ``p −= lr·g``, no momentum, no Nesterov: identical in both.

    PyTorch's optimisers run their multi-tensor (``foreach``) code path, which on CPU gives the same numbers as the
    per-tensor loop with less Python overhead.
    """
    _check_choice("optimizer", name, OPTIMIZERS)
    cfg = KERAS_DEFAULTS[name]
    if name == "adam":
        return KerasAdam(params, **cfg)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg["lr"], rho=cfg["rho"], eps=cfg["epsilon"], foreach=True)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg["lr"], eps=cfg["epsilon"], initial_accumulator_value=0.0,
                                   foreach=True)  # fmt: skip
    return torch.optim.SGD(params, lr=cfg["lr"], momentum=0.0, nesterov=False, foreach=True)


# ---------------------------------------------------------------------------------------------------------------
# scaling


class MinMaxScaler:
    """Column-wise min-max scaling to [0, ``high``] (§3.1: inputs and targets to [0, 1]), fitted on training data only.

    ``high`` > 1 is for targets: with the log-cosh loss, which is quadratic for |Δ| < 1 and linear beyond, a [0, 1]
    scaling makes every residual "small" and the loss a mean-squared error; a larger range makes it robust.
    Like scikit-learn's ``MinMaxScaler``, a constant column has scale 1 (it maps to 0 instead of dividing by zero).
    Data outside the fitted range (validation, test) map outside [0, high]; nothing is clipped. Arithmetic in float64.
    """

    def __init__(
        self, data_min: np.ndarray | None = None, data_max: np.ndarray | None = None, high: float = 1.0
    ) -> None:
        if not high > 0:
            raise ValueError(f"MinMaxScaler: high must be > 0, got {high}")
        self.data_min = None if data_min is None else np.asarray(data_min, dtype=np.float64)
        self.data_max = None if data_max is None else np.asarray(data_max, dtype=np.float64)
        self.high = float(high)

    def fit(self, x) -> MinMaxScaler:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"MinMaxScaler.fit needs a non-empty 2-D array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("MinMaxScaler.fit: data contain NaN or infinity")
        self.data_min, self.data_max = x.min(axis=0), x.max(axis=0)
        return self

    @property
    def scale(self) -> np.ndarray:
        """Data units per scaled unit."""
        if self.data_min is None:
            raise RuntimeError("MinMaxScaler is not fitted")
        span = self.data_max - self.data_min
        return np.where(span > 0, span, 1.0) / self.high

    def transform(self, x) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.data_min) / self.scale

    def inverse_transform(self, x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) * self.scale + self.data_min

    def to_dict(self) -> dict:
        return {"min": self.data_min.tolist(), "max": self.data_max.tolist(), "high": self.high}

    @classmethod
    def from_dict(cls, data: dict) -> MinMaxScaler:
        return cls(np.asarray(data["min"]), np.asarray(data["max"]), data.get("high", 1.0))
