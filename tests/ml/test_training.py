"""The targets and corrected values, the Keras-like training loop, and the checkpoint (save, load, predict).

Training checks use small toy skims (tests/conftest.py) whose targets are smooth functions of the inputs, so a working
loop must learn them.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from l1refit.ml.checkpoint import TrainedModel
from l1refit.ml.network import make_loss
from l1refit.ml.spec import ModelSpec
from l1refit.ml.targets import DEFAULT_INPUTS, OFFSET_KEYS, corrected, offsets, targets
from l1refit.ml.training import HISTORY_COLUMNS, plot_history, train_and_save
from l1refit.scales import delta_phi

# ---------------------------------------------------------------------------------------------------------------
# targets and corrected values


@pytest.mark.parametrize("pt_target", ["absolute", "relative"])
def test_corrected_inverts_targets_including_phi_wrap(pt_target, toy_skim):
    df = toy_skim(2000)
    df.loc[:4, "l1_phi"] = [3.14, -3.14, np.pi, -3.1, 3.1]
    df.loc[:4, "reco_phi"] = [-3.14, 3.14, -3.1, 3.1, -np.pi + 1e-9]
    y = offsets(df, pt_target)
    assert list(y) == list(OFFSET_KEYS) and np.all(np.abs(y["phi"]) <= np.pi)
    np.testing.assert_array_equal(targets(df, pt_target), np.column_stack([y[key] for key in OFFSET_KEYS]))
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
    with pytest.raises(ValueError, match=r"pred\['pt'\] must have shape \(1,\)"):
        corrected(df, {"phi": [0.0], "eta": [0.0], "pt": [0.0, 1.0]})


# ---------------------------------------------------------------------------------------------------------------
# training


def test_scalers_are_fitted_on_training_rows_only(toy_skim, fit_toy):
    df = toy_skim(500)
    n_fit = int(len(df) * 0.8)
    validation_row = np.random.default_rng(7).permutation(len(df))[n_fit]  # the documented split rule
    df.loc[validation_row, "hwPt"] = 10_000
    model, _ = fit_toy(df, epochs=1)
    assert model.x_scaler.data_max[2] == df["hwPt"].drop(index=validation_row).max() < 10_000
    assert model.metadata["n_train"] == n_fit and model.metadata["n_validation"] == len(df) - n_fit


def test_target_clip_keeps_outliers_out_of_the_target_scaler(toy_skim, fit_toy):
    df = toy_skim(2000)
    df.loc[5, "reco_pt"] = df.loc[5, "l1_pt"] + 150.0  # one fake-like outlier: dpT = -150 GeV
    plain, _ = fit_toy(df, epochs=1)
    robust, _ = fit_toy(df, epochs=1, target_clip=0.01)
    assert plain.y_scaler.data_min[2] == pytest.approx(-150.0)
    dpt = targets(df, "absolute")[:, 2]
    assert robust.y_scaler.data_min[2] >= np.quantile(dpt, 0.005) > -150.0  # the outlier no longer sets the range
    assert robust.y_scaler.data_max[2] <= dpt.max()


def test_target_scale_makes_logcosh_fit_the_core_not_the_mean(toy_skim, fit_toy):
    # dphi: a narrow core at 0 and, for 20 % of the muons, a one-sided tail at -0.5 rad (decays in flight)
    df = toy_skim(20000, seed=3)
    rng = np.random.default_rng(4)
    dphi = 0.002 * rng.normal(size=len(df)) - 0.5 * (rng.random(len(df)) < 0.2)
    df["reco_phi"] = delta_phi(df["l1_phi"], dphi)
    common = {"epochs": 15, "batch_size": 128, "patience": 15}
    mse_like, _ = fit_toy(df, **common)
    robust, _ = fit_toy(df, target_scale=30.0, **common)
    assert robust.y_scaler.high == 30.0 and robust.metadata["target_scale"] == 30.0
    np.testing.assert_allclose(robust.y_scaler.transform(targets(df)).max(axis=0), 30.0, rtol=0.1)
    mean_pred = np.median(mse_like.predict_targets(df)[:, 0])
    core_pred = np.median(robust.predict_targets(df)[:, 0])
    assert mean_pred < -0.05  # [0, 1] scaling: log-cosh is quadratic, the answer is near the mean (-0.1)
    assert abs(core_pred) < 0.03  # [0, 30]: robust, the answer is near the median (0)


def test_training_learns_a_smooth_toy(toy_skim, fit_toy):
    df = toy_skim(20_000)
    lines = []
    model, history = fit_toy(df, epochs=25, batch_size=256, patience=25, progress=lines.append)
    assert list(history.columns) == list(HISTORY_COLUMNS) and len(history) == 25
    assert len(lines) == 26 and lines[0].startswith("epoch 1/25")
    assert history["val_loss"].min() < history["val_loss"].iloc[0] / 5
    truth = targets(df, "absolute")
    pred = model.predict_targets(df)
    r2 = 1 - ((pred - truth) ** 2).mean(axis=0) / truth.var(axis=0)
    assert np.all(r2 > 0.9), r2


def test_training_is_bit_deterministic_per_seed(toy_skim, fit_toy):
    df = toy_skim(3000)
    spec = ModelSpec("logcosh", "adadelta", {"l2": 1e-4}, "relu", "linear")
    first, _ = fit_toy(df, spec, epochs=3)
    second, _ = fit_toy(df, spec, epochs=3)
    other, _ = fit_toy(df, spec, epochs=3, seed=8)
    state_1, state_2 = first.module.state_dict(), second.module.state_dict()
    assert all(torch.equal(state_1[key], state_2[key]) for key in state_1)
    np.testing.assert_array_equal(first.predict(df)["pred_pt"], second.predict(df)["pred_pt"])
    assert not torch.equal(state_1["0.weight"], other.module.state_dict()["0.weight"])


def test_early_stopping_restores_the_best_epoch(tmp_path, toy_skim, fit_toy):
    df = toy_skim(1000, noise=1.0)  # mostly noise: validation loss stops improving early
    spec = ModelSpec("mse", "adam", None, "relu", "linear")
    model, history = fit_toy(df, spec, epochs=200, batch_size=64, patience=3)
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


def test_save_load_round_trip(tmp_path, toy_skim, spec_a):
    df = toy_skim(2000)
    model, history = train_and_save(
        df, spec_a, model_path=tmp_path / "m" / "model.pt", history_path=tmp_path / "m" / "history.csv",
        plot_path=tmp_path / "m" / "loss.png", title="A fold 0", metadata={"model": "A", "fold": 0},
        epochs=2, batch_size=256, patience=2, validation_fraction=0.2, pt_target="relative", seed=3,
        progress=lambda line: None,
    )  # fmt: skip
    raw = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert raw["inputs"] == list(DEFAULT_INPUTS) and raw["metadata"]["fold"] == 0
    loaded = TrainedModel.load(tmp_path / "m" / "model.pt")
    assert loaded.spec == spec_a and loaded.pt_target == "relative" and loaded.metadata == model.metadata
    before, after = model.predict(df), loaded.predict(df)
    for key in ("pred_phi", "pred_eta", "pred_pt"):
        np.testing.assert_array_equal(before[key], after[key])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "m" / "history.csv"), history, check_exact=False)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["history.csv", "loss.png", "model.pt"]
    loaded.save(tmp_path / "again.pt")  # the same model gives the same bytes under any name (reruns stay quiet)
    assert (tmp_path / "again.pt").read_bytes() == (tmp_path / "m" / "model.pt").read_bytes()
