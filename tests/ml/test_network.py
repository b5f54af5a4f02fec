"""The MLP, its Keras-faithful losses, optimisers and regularisation, the spec and the min-max scaler.

Optimiser checks compare against the Keras 2.2 update rules written out by hand.
"""

import math

import numpy as np
import pytest
import torch

from l1refit.ml.network import build_mlp, make_loss, regularization_penalty
from l1refit.ml.optimizers import FlatAdam, KerasAdam, make_optimizer
from l1refit.ml.scaling import MinMaxScaler
from l1refit.ml.spec import HIDDEN_ACTIVATIONS, LOSSES, OPTIMIZERS, OUTPUT_ACTIVATIONS, ModelSpec

# ---------------------------------------------------------------------------------------------------------------
# losses


def test_logcosh_exact_for_small_and_stable_for_large_differences():
    loss = make_loss("logcosh")
    x = torch.tensor([-1.5, -0.3, 0.0, 0.2, 2.0], dtype=torch.float64)
    for value in x:
        got = loss(value.reshape(1, 1), torch.zeros(1, 1, dtype=torch.float64))
        assert float(got) == pytest.approx(math.log(math.cosh(float(value))), rel=1e-12, abs=1e-15)
    big = loss(torch.tensor([[1000.0, -1000.0]]), torch.zeros(1, 2))
    assert torch.isfinite(big) and float(big) == pytest.approx(1000.0 - math.log(2.0), rel=1e-6)
    assert torch.isinf(torch.log(torch.cosh(torch.tensor(1000.0))))  # the naive form would overflow


def test_msle_matches_keras_formula_with_clipping():
    pred = torch.tensor([[0.5, -2.0]], dtype=torch.float64)  # -2 is clipped to 1e-7 as Keras does
    true = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    expected = ((math.log(1.5) - math.log(2.0)) ** 2 + (math.log(1 + 1e-7) - math.log(4.0)) ** 2) / 2
    assert float(make_loss("msle")(pred, true)) == pytest.approx(expected, rel=1e-12)
    assert float(make_loss("mse")(pred, true)) == pytest.approx((0.25 + 25.0) / 2)


# ---------------------------------------------------------------------------------------------------------------
# optimisers against Keras 2.2's update rules by hand


def _quadratic_steps(optimizer_factory, steps: int, p0: float, curvature: float) -> list[float]:
    """Minimise 0.5·c·p² (gradient c·p) in float64; the parameter after each step."""
    p = torch.tensor([p0], dtype=torch.float64, requires_grad=True)
    opt = optimizer_factory([p])
    values = []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * curvature * p * p).sum().backward()
        opt.step()
        values.append(float(p.detach()))
    return values


def test_keras_adam_two_steps_by_hand_and_unlike_torch_adam():
    # Gradients of order 1e-7, so that where epsilon sits matters.
    p0, c = 1.0, 2e-7
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7
    p, m, v, expected = p0, 0.0, 0.0, []
    for t in (1, 2):
        g = c * p
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        p -= lr_t * m / (math.sqrt(v) + eps)
        expected.append(p)
    got = _quadratic_steps(lambda params: make_optimizer("adam", params), 2, p0, c)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
    assert isinstance(make_optimizer("adam", [torch.zeros(1, requires_grad=True)]), KerasAdam)
    torch_adam = _quadratic_steps(lambda params: torch.optim.Adam(params, lr=lr, eps=eps), 2, p0, c)
    assert abs(torch_adam[0] - got[0]) > 1e-4 * lr  # PyTorch's ε inside the bias correction moves less


def test_adadelta_two_steps_by_hand():
    p0, c, rho, eps = 0.7, 3.0, 0.95, 1e-7
    p, a, d, expected = p0, 0.0, 0.0, []
    for _ in range(2):
        g = c * p
        a = rho * a + (1 - rho) * g * g
        update = g * math.sqrt(d + eps) / math.sqrt(a + eps)
        p -= 1.0 * update
        d = rho * d + (1 - rho) * update * update
        expected.append(p)
    got = _quadratic_steps(lambda params: make_optimizer("adadelta", params), 2, p0, c)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_adagrad_two_steps_by_hand_accumulator_from_zero():
    p0, c, lr, eps = 0.7, 1e-6, 0.01, 1e-7  # small gradients: eps and the accumulator start both matter
    p, a, expected = p0, 0.0, []
    for _ in range(2):
        g = c * p
        a += g * g
        p -= lr * g / (math.sqrt(a) + eps)
        expected.append(p)
    got = _quadratic_steps(lambda params: make_optimizer("adagrad", params), 2, p0, c)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_sgd_one_step_by_hand():
    got = _quadratic_steps(lambda params: make_optimizer("sgd", params), 1, 0.7, 3.0)
    assert got[0] == pytest.approx(0.7 - 0.01 * 3.0 * 0.7, rel=1e-12)


def _float32_training(optimizer_factory, steps: int = 30) -> list[torch.Tensor]:
    """The paper's MLP (float32, BatchNorm, 14 parameter tensors) after ``steps`` minibatch steps of log-cosh."""
    entry = {"loss": "logcosh", "optimizer": "adam", "regularization": None, "hidden_activation": "relu",
             "output_activation": "linear"}  # fmt: skip
    spec = ModelSpec.from_config(entry, hidden=(32, 32, 32))
    torch.manual_seed(3)
    module = build_mlp(4, 3, spec)
    optimizer = optimizer_factory(list(module.parameters()))
    data = torch.Generator().manual_seed(4)
    for _ in range(steps):
        x, y = torch.rand(256, 4, generator=data), 30 * torch.rand(256, 3, generator=data)
        optimizer.zero_grad(set_to_none=True)
        make_loss("logcosh")(module(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in module.parameters()]


class _PerTensorKerasAdam(torch.optim.Optimizer):
    """Keras' Adam written per parameter tensor, the reference the flat-state KerasAdam must equal bit for bit."""

    def __init__(self, params):
        super().__init__(params, {})
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        lr_t = 1e-3 * math.sqrt(1.0 - 0.999**self.t) / (1.0 - 0.9**self.t)
        for p in self.param_groups[0]["params"]:
            state = self.state[p]
            if not state:
                state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
            state["m"].mul_(0.9).add_(p.grad, alpha=1.0 - 0.9)
            state["v"].mul_(0.999).addcmul_(p.grad, p.grad, value=1.0 - 0.999)
            p.addcdiv_(state["m"], torch.sqrt(state["v"]).add_(1e-7), value=-lr_t)


def test_flat_state_optimisers_equal_per_tensor_updates_bit_for_bit():
    # The flat state is a speed choice only: the trained weights must not move by one ulp.
    torch_adadelta = _float32_training(lambda ps: torch.optim.Adadelta(ps, lr=1.0, rho=0.95, eps=1e-7))
    for got, want in zip(_float32_training(lambda ps: make_optimizer("adadelta", ps)), torch_adadelta, strict=True):
        assert torch.equal(got, want)
    for got, want in zip(_float32_training(lambda ps: make_optimizer("adam", ps)),
                         _float32_training(_PerTensorKerasAdam), strict=True):  # fmt: skip
        assert torch.equal(got, want)
    torch_adam = _float32_training(lambda ps: torch.optim.Adam(ps, lr=1e-3))
    for got, want in zip(_float32_training(lambda ps: FlatAdam(ps, lr=1e-3)), torch_adam, strict=True):
        assert torch.equal(got, want)
    with pytest.raises(NotImplementedError, match="resuming"):
        make_optimizer("adam", [torch.zeros(1, requires_grad=True)]).load_state_dict({})


def test_flat_state_optimiser_names_a_parameter_without_gradient():
    used, unused = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    optimizer = make_optimizer("adadelta", [used, unused])
    (used * 2.0).sum().backward()
    with pytest.raises(ValueError, match=r"parameters \[1\] of group 0 have no gradient"):
        optimizer.step()


# ---------------------------------------------------------------------------------------------------------------
# network, regularisation, spec validation


def test_mlp_layout_initialisation_and_batchnorm_as_keras(spec_a):
    torch.manual_seed(0)
    net = build_mlp(4, 3, spec_a)
    kinds = [type(layer).__name__ for layer in net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 3 + ["Linear", "Identity"]
    norms = [layer for layer in net if isinstance(layer, torch.nn.BatchNorm1d)]
    assert all(bn.momentum == 0.01 and bn.eps == 1e-3 for bn in norms)
    assert all(torch.all(bn.weight == 1) and torch.all(bn.bias == 0) for bn in norms)
    for layer in (x for x in net if isinstance(x, torch.nn.Linear)):
        fan_out, fan_in = layer.weight.shape
        assert torch.all(layer.bias == 0)
        assert layer.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out))  # glorot_uniform bound


def test_softmax_hidden_activation_sums_to_one_over_units():
    spec = ModelSpec("logcosh", "adam", None, "softmax", "relu")
    net = build_mlp(4, 3, spec).eval()
    outputs = []
    for layer in net[2:9:3]:
        layer.register_forward_hook(lambda module, args, out: outputs.append(out))
    result = net(torch.randn(50, 4))
    assert len(outputs) == 3
    for out in outputs:
        torch.testing.assert_close(out.sum(dim=1), torch.ones(50))
    assert torch.all(result >= 0)  # relu output activation


def test_penalty_is_lambda_times_kernel_sums_without_biases(spec_a):
    net = build_mlp(4, 3, spec_a)
    for param in net.parameters():
        torch.nn.init.constant_(param, 0.5)  # biases and BN parameters non-zero too: they must be left out
    kernels = [layer.weight for layer in net if isinstance(layer, torch.nn.Linear)]
    n_kernel = sum(w.numel() for w in kernels)
    with torch.no_grad():
        assert float(regularization_penalty(net, {"l2": 1e-3})) == pytest.approx(1e-3 * 0.25 * n_kernel, rel=1e-6)
        assert float(regularization_penalty(net, {"l1": 2e-3})) == pytest.approx(2e-3 * 0.5 * n_kernel, rel=1e-6)
        assert float(regularization_penalty(net, None)) == 0.0


@pytest.mark.parametrize(
    ("key", "allowed"),
    [("loss", LOSSES), ("optimizer", OPTIMIZERS), ("hidden_activation", HIDDEN_ACTIVATIONS),
     ("output_activation", OUTPUT_ACTIVATIONS)],
)  # fmt: skip
def test_unknown_names_are_errors_naming_key_and_choices(key, allowed):
    entry = {"loss": "logcosh", "optimizer": "adam", "regularization": None, "hidden_activation": "relu",
             "output_activation": "linear", key: "bogus"}  # fmt: skip
    with pytest.raises(ValueError, match=key) as err:
        ModelSpec.from_config(entry, [32, 32, 32])
    assert all(name in str(err.value) for name in allowed)
    with pytest.raises(ValueError, match="l2"):
        ModelSpec.from_config({**entry, key: allowed[0], "regularization": {"l3": 1.0}}, [32])
    with pytest.raises(ValueError, match="loss.*mse, msle, logcosh"):
        make_loss("huber")
    with pytest.raises(ValueError, match="optimizer.*adam, adadelta, adagrad, sgd"):
        make_optimizer("rmsprop", [torch.zeros(1, requires_grad=True)])


def test_spec_from_config_round_trip():
    spec = ModelSpec.from_config({"loss": "logcosh", "optimizer": "adadelta", "regularization": {"l2": 1e-7},
                                  "hidden_activation": "relu", "output_activation": "linear"}, [16, 8])  # fmt: skip
    assert spec.hidden == (16, 8) and spec.regularization == {"l2": 1e-7}
    assert ModelSpec.from_dict(spec.to_dict()) == spec


# ---------------------------------------------------------------------------------------------------------------
# scaling


def test_scaler_round_trip_constant_column_and_dict():
    x = np.array([[1.0, 5.0, -2.0], [3.0, 5.0, 0.0], [2.0, 5.0, 2.0]])
    scaler = MinMaxScaler().fit(x)
    z = scaler.transform(x)
    assert z.min() == 0.0 and z.max() == 1.0 and np.all(z[:, 1] == 0.0)
    np.testing.assert_allclose(scaler.inverse_transform(z), x, rtol=0, atol=1e-15)
    again = MinMaxScaler.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.transform(x), z)
