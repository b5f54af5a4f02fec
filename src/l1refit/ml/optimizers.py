"""Keras 2.2/2.3 optimisers in PyTorch: the paper's "default parameters" and Keras' update rules.

Adam is Keras' own (ε outside the bias-corrected √v, unlike ``torch.optim.Adam``); Adadelta, Adagrad and SGD are
PyTorch's with Keras' ε and accumulator start, which makes them the same algorithms (see :func:`make_optimizer`).
"""

from __future__ import annotations

import math

import torch

from l1refit.ml.spec import KERAS_EPSILON, OPTIMIZERS, check_choice

# Keras 2.2/2.3 optimiser defaults (keras/optimizers.py), the "default parameters" the paper trained with.
KERAS_DEFAULTS = {
    "adam": {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": KERAS_EPSILON},
    "adadelta": {"lr": 1.0, "rho": 0.95, "epsilon": KERAS_EPSILON},
    "adagrad": {"lr": 0.01, "epsilon": KERAS_EPSILON},
    "sgd": {"lr": 0.01},
}


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
    check_choice("optimizer", name, OPTIMIZERS)
    cfg = KERAS_DEFAULTS[name]
    if name == "adam":
        return KerasAdam(params, **cfg)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg["lr"], rho=cfg["rho"], eps=cfg["epsilon"], foreach=True)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg["lr"], eps=cfg["epsilon"], initial_accumulator_value=0.0,
                                   foreach=True)  # fmt: skip
    return torch.optim.SGD(params, lr=cfg["lr"], momentum=0.0, nesterov=False, foreach=True)
