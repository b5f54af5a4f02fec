"""The MLP, its Keras-faithful losses and optimisers, the scalers, and the training loop (issue 5).

Optimiser checks compare against the Keras 2.2 update rules written out by hand; training checks use small toy skims
whose targets are smooth functions of the inputs, so a working loop must learn them.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from l1refit.model import (
    HIDDEN_ACTIVATIONS,
    LOSSES,
    OPTIMIZERS,
    OUTPUT_ACTIVATIONS,
    KerasAdam,
    MinMaxScaler,
    ModelSpec,
    build_mlp,
    make_loss,
    make_optimizer,
    regularization_penalty,
)
from l1refit.scales import delta_phi
from l1refit.train import (
    DEFAULT_INPUTS,
    HISTORY_COLUMNS,
    TrainedModel,
    corrected,
    plot_history,
    targets,
    train,
    train_and_save,
)

SPEC_A = ModelSpec("logcosh", "adam", None, "relu", "linear")


def _toy_skim(n: int, seed: int = 0, noise: float = 0.0) -> pd.DataFrame:
    """A skim-shaped table whose L1 − offline differences are smooth functions of the hardware inputs."""
    rng = np.random.default_rng(seed)
    hw_phi = rng.integers(0, 576, n)
    hw_eta = rng.integers(-80, 82, n)
    hw_pt = rng.integers(7, 91, n)
    charge = rng.choice([-1, 1], n)
    l1_pt = (hw_pt - 1) * 0.5
    l1_eta = hw_eta * 0.010875
    l1_phi = delta_phi(hw_phi * 0.010908, 0.0)
    dphi = 0.3 * charge / l1_pt + 0.02 * np.sin(hw_phi * 2 * np.pi / 576) + noise * rng.normal(size=n)
    deta = 0.01 * l1_eta**2 + noise * rng.normal(size=n) * 0.01
    dpt = 0.1 * l1_pt + noise * rng.normal(size=n)
    return pd.DataFrame({
        "hwPhiAtVtx": hw_phi, "hwEtaAtVtx": hw_eta, "hwPt": hw_pt, "charge": charge,
        "l1_pt": l1_pt, "l1_eta": l1_eta, "l1_phi": l1_phi,
        "reco_pt": l1_pt - dpt, "reco_eta": l1_eta - deta, "reco_phi": delta_phi(l1_phi, dphi),
    })  # fmt: skip


def _fit(df, spec=SPEC_A, **kwargs):
    args = {"epochs": 4, "batch_size": 256, "patience": 3, "validation_fraction": 0.2, "seed": 7,
            "progress": lambda line: None} | kwargs  # fmt: skip
    return train(df, spec, **args)


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


# ---------------------------------------------------------------------------------------------------------------
# network, regularisation, spec validation


def test_mlp_layout_initialisation_and_batchnorm_as_keras():
    torch.manual_seed(0)
    net = build_mlp(4, 3, SPEC_A)
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


def test_penalty_is_lambda_times_kernel_sums_without_biases():
    net = build_mlp(4, 3, SPEC_A)
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
# scaling and targets


def test_scaler_round_trip_constant_column_and_dict():
    x = np.array([[1.0, 5.0, -2.0], [3.0, 5.0, 0.0], [2.0, 5.0, 2.0]])
    scaler = MinMaxScaler().fit(x)
    z = scaler.transform(x)
    assert z.min() == 0.0 and z.max() == 1.0 and np.all(z[:, 1] == 0.0)
    np.testing.assert_allclose(scaler.inverse_transform(z), x, rtol=0, atol=1e-15)
    again = MinMaxScaler.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.transform(x), z)


def test_scalers_are_fitted_on_training_rows_only():
    df = _toy_skim(500)
    n_fit = int(len(df) * 0.8)
    validation_row = np.random.default_rng(7).permutation(len(df))[n_fit]  # the documented split rule
    df.loc[validation_row, "hwPt"] = 10_000
    model, _ = _fit(df, epochs=1)
    assert model.x_scaler.data_max[2] == df["hwPt"].drop(index=validation_row).max() < 10_000
    assert model.metadata["n_train"] == n_fit and model.metadata["n_validation"] == len(df) - n_fit


def test_target_clip_keeps_outliers_out_of_the_target_scaler():
    df = _toy_skim(2000)
    df.loc[5, "reco_pt"] = df.loc[5, "l1_pt"] + 150.0  # one fake-like outlier: dpT = -150 GeV
    plain, _ = _fit(df, epochs=1)
    robust, _ = _fit(df, epochs=1, target_clip=0.01)
    assert plain.y_scaler.data_min[2] == pytest.approx(-150.0)
    dpt = targets(df, "absolute")[:, 2]
    assert robust.y_scaler.data_min[2] >= np.quantile(dpt, 0.005) > -150.0  # the outlier no longer sets the range
    assert robust.y_scaler.data_max[2] <= dpt.max()


def test_target_scale_makes_logcosh_fit_the_core_not_the_mean():
    # dphi: a narrow core at 0 and, for 20 % of the muons, a one-sided tail at -0.5 rad (decays in flight)
    df = _toy_skim(20000, seed=3)
    rng = np.random.default_rng(4)
    dphi = 0.002 * rng.normal(size=len(df)) - 0.5 * (rng.random(len(df)) < 0.2)
    df["reco_phi"] = delta_phi(df["l1_phi"], dphi)
    common = {"epochs": 15, "batch_size": 128, "patience": 15}
    mse_like, _ = _fit(df, **common)
    robust, _ = _fit(df, target_scale=30.0, **common)
    assert robust.y_scaler.high == 30.0 and robust.metadata["target_scale"] == 30.0
    np.testing.assert_allclose(robust.y_scaler.transform(targets(df)).max(axis=0), 30.0, rtol=0.1)
    mean_pred = np.median(mse_like.predict_targets(df)[:, 0])
    core_pred = np.median(robust.predict_targets(df)[:, 0])
    assert mean_pred < -0.05  # [0, 1] scaling: log-cosh is quadratic, the answer is near the mean (-0.1)
    assert abs(core_pred) < 0.03  # [0, 30]: robust, the answer is near the median (0)


@pytest.mark.parametrize("pt_target", ["absolute", "relative"])
def test_corrected_inverts_targets_including_phi_wrap(pt_target):
    df = _toy_skim(2000)
    df.loc[:4, "l1_phi"] = [3.14, -3.14, np.pi, -3.1, 3.1]
    df.loc[:4, "reco_phi"] = [-3.14, 3.14, -3.1, 3.1, -np.pi + 1e-9]
    y = targets(df, pt_target)
    assert np.all(np.abs(y[:, 0]) <= np.pi)
    out = corrected(df, y, pt_target)
    np.testing.assert_allclose(delta_phi(out["pred_phi"], df["reco_phi"]), 0.0, atol=1e-6)
    assert np.all((out["pred_phi"] > -np.pi) & (out["pred_phi"] <= np.pi))
    np.testing.assert_allclose(out["pred_eta"], df["reco_eta"], atol=1e-6)
    np.testing.assert_allclose(out["pred_pt"], df["reco_pt"], atol=1e-6)


def test_pt_conventions():
    df = pd.DataFrame({"l1_pt": [10.0], "reco_pt": [8.0], "l1_eta": [0.0], "reco_eta": [0.0], "l1_phi": [0.0],
                       "reco_phi": [0.0]})  # fmt: skip
    assert targets(df, "absolute")[0, 2] == 2.0 and targets(df, "relative")[0, 2] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="pt_target.*absolute, relative"):
        targets(df, "log")


# ---------------------------------------------------------------------------------------------------------------
# training


def test_training_learns_a_smooth_toy():
    df = _toy_skim(20_000)
    lines = []
    model, history = _fit(df, epochs=25, batch_size=256, patience=25, progress=lines.append)
    assert list(history.columns) == list(HISTORY_COLUMNS) and len(history) == 25
    assert len(lines) == 26 and lines[0].startswith("epoch 1/25")
    assert history["val_loss"].min() < history["val_loss"].iloc[0] / 5
    truth = targets(df, "absolute")
    pred = model.predict_targets(df)
    r2 = 1 - ((pred - truth) ** 2).mean(axis=0) / truth.var(axis=0)
    assert np.all(r2 > 0.9), r2


def test_training_is_bit_deterministic_per_seed():
    df = _toy_skim(3000)
    spec = ModelSpec("logcosh", "adadelta", {"l2": 1e-4}, "relu", "linear")
    first, _ = _fit(df, spec, epochs=3)
    second, _ = _fit(df, spec, epochs=3)
    other, _ = _fit(df, spec, epochs=3, seed=8)
    state_1, state_2 = first.module.state_dict(), second.module.state_dict()
    assert all(torch.equal(state_1[key], state_2[key]) for key in state_1)
    np.testing.assert_array_equal(first.predict(df)["pred_pt"], second.predict(df)["pred_pt"])
    assert not torch.equal(state_1["0.weight"], other.module.state_dict()["0.weight"])


def test_early_stopping_restores_the_best_epoch(tmp_path):
    df = _toy_skim(1000, noise=1.0)  # mostly noise: validation loss stops improving early
    spec = ModelSpec("mse", "adam", None, "relu", "linear")
    model, history = _fit(df, spec, epochs=200, batch_size=64, patience=3)
    best_epoch = int(history.loc[history["val_loss"].idxmin(), "epoch"])
    assert len(history) == best_epoch + 3 < 200
    assert model.metadata["best_epoch"] == best_epoch
    # the returned weights are the best epoch's: recompute its validation loss
    n_fit = int(len(df) * 0.8)
    rows = np.random.default_rng(7).permutation(len(df))[n_fit:]
    val = df.iloc[rows]
    y = torch.from_numpy(model.y_scaler.transform(targets(val)).astype(np.float32))
    x = torch.from_numpy(model.x_scaler.transform(val[list(DEFAULT_INPUTS)].to_numpy(float)).astype(np.float32))
    with torch.no_grad():
        val_loss = float(make_loss("mse")(model.module(x), y))
    assert val_loss == pytest.approx(history["val_loss"].min(), rel=1e-5)
    plot_history(history, tmp_path / "loss.png", "toy")
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_load_round_trip(tmp_path):
    df = _toy_skim(2000)
    model, history = train_and_save(
        df, SPEC_A, model_path=tmp_path / "m" / "model.pt", history_path=tmp_path / "m" / "history.csv",
        plot_path=tmp_path / "m" / "loss.png", title="A fold 0", metadata={"model": "A", "fold": 0},
        epochs=2, batch_size=256, patience=2, validation_fraction=0.2, pt_target="relative", seed=3,
        progress=lambda line: None,
    )  # fmt: skip
    raw = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert raw["inputs"] == list(DEFAULT_INPUTS) and raw["metadata"]["fold"] == 0
    loaded = TrainedModel.load(tmp_path / "m" / "model.pt")
    assert loaded.spec == SPEC_A and loaded.pt_target == "relative" and loaded.metadata == model.metadata
    before, after = model.predict(df), loaded.predict(df)
    for key in ("pred_phi", "pred_eta", "pred_pt"):
        np.testing.assert_array_equal(before[key], after[key])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "m" / "history.csv"), history, check_exact=False)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["history.csv", "loss.png", "model.pt"]
