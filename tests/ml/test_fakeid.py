"""The fake-ID classifier: it learns the known fake sources of a toy, reproducibly, and saves/loads exactly.

The toy has one real muon per event (quality 13–15, hard pT), sometimes a ghost beside it (quality one below the
real one's, a few hardware units away in φ and η: the ghost sees near_dqual = +1, its real partner −1),
punch-through (alone, quality 12–13, soft pT) and uniform noise. Quality alone separates only part of it; the
neighbour features and pT separate the rest.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from l1refit.analysis.fakeid import auc, quality_score
from l1refit.ml.fakeid import FAKE_FEATURES, FakeClassifier, train_classifier
from l1refit.ml.training import HISTORY_COLUMNS

FAST = {"epochs": 12, "batch_size": 256, "patience": 3, "validation_fraction": 0.2, "learning_rate": 3e-3}


def _alone(n, rng, qual, pt, is_fake):
    return pd.DataFrame({
        "hwPhiAtVtx": rng.integers(0, 576, n), "hwEtaAtVtx": rng.integers(-200, 201, n), "hwPt": pt,
        "charge": rng.choice([-1, 1], n), "hwQual": qual, "n_l1_bx": 1, "near_dphi": 288, "near_deta": 0,
        "near_dqual": 0, "near_dpt": 0, "is_fake": is_fake,
    })  # fmt: skip


def toy_candidates(n_events: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    real_pt = np.minimum(7 + rng.exponential(40, n_events).astype(int), 511)
    reals = _alone(n_events, rng, rng.integers(13, 16, n_events), real_pt, False)
    ghosted = rng.random(n_events) < 0.3
    ghosts = reals[ghosted].copy()
    n_ghosts = len(ghosts)
    dphi, deta = rng.integers(0, 4, n_ghosts), rng.integers(0, 6, n_ghosts)
    dpt = rng.integers(-6, 7, n_ghosts)
    ghosts["hwQual"] -= 1
    ghosts["hwPt"] = np.maximum(ghosts["hwPt"] + dpt, 2)
    ghosts["hwPhiAtVtx"] = (ghosts["hwPhiAtVtx"] + dphi) % 576
    ghosts["hwEtaAtVtx"] += deta
    ghosts[["n_l1_bx", "near_dphi", "near_deta", "near_dqual", "is_fake"]] = [2, 0, 0, 1, True]
    ghosts["near_dphi"], ghosts["near_deta"] = dphi, deta
    ghosts["near_dpt"] = reals.loc[ghosted, "hwPt"].to_numpy() - ghosts["hwPt"].to_numpy()
    reals.loc[ghosted, ["n_l1_bx", "near_dqual"]] = [2, -1]
    reals.loc[ghosted, "near_dphi"], reals.loc[ghosted, "near_deta"] = dphi, deta
    reals.loc[ghosted, "near_dpt"] = -ghosts["near_dpt"].to_numpy()
    n_punch, n_noise = n_events // 4, n_events // 10
    punch = _alone(n_punch, rng, rng.integers(12, 14, n_punch), rng.integers(5, 20, n_punch), True)
    noise = _alone(n_noise, rng, rng.integers(0, 16, n_noise), rng.integers(2, 300, n_noise), True)
    frame = pd.concat([reals, ghosts, punch, noise], ignore_index=True)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    for name in FAKE_FEATURES:
        frame[name] = frame[name].astype(np.int64)
    frame["is_fake"] = frame["is_fake"].astype(bool)
    return frame


@pytest.fixture(scope="module")
def toy():
    return toy_candidates(3000, seed=1), toy_candidates(2000, seed=2)  # training, held-out


@pytest.fixture(scope="module")
def trained(toy):
    return train_classifier(toy[0], seed=3, **FAST)


def test_beats_the_quality_cut_on_held_out_candidates(toy, trained):
    classifier, history = trained
    test = toy[1]
    proba = classifier.predict_proba(test)
    assert proba.dtype == np.float32 and proba.shape == (len(test),)
    assert np.all((proba >= 0) & (proba <= 1))
    mlp_auc, quality_auc = auc(test["is_fake"], proba), auc(test["is_fake"], quality_score(test))
    assert 0.6 < quality_auc < 0.9  # the toy is not trivial for the quality cut
    assert mlp_auc > 0.9 and mlp_auc > quality_auc + 0.05, (mlp_auc, quality_auc)
    assert list(history.columns) == list(HISTORY_COLUMNS) and 1 <= len(history) <= FAST["epochs"]
    assert history["epoch"].tolist() == list(range(1, len(history) + 1))
    best = int(history["epoch"][history["val_loss"].idxmin()])
    assert classifier.metadata["best_epoch"] == best
    assert classifier.metadata["best_val_loss"] == history["val_loss"].min()
    assert classifier.metadata["n_train"] + classifier.metadata["n_validation"] == len(toy[0])


def test_standardisation_inside_the_module_and_forward_is_predict_proba(toy, trained):
    classifier, _ = trained
    module = classifier.module
    x = toy[0][list(FAKE_FEATURES)].to_numpy(np.float64)
    # fitted on the training rows (80 % of them): close to the statistics of all rows, never a default 0 / 1
    assert np.all(np.abs(module.offset.numpy() - x.mean(axis=0)) <= 0.1 * x.std(axis=0) + 1e-6)
    np.testing.assert_allclose(module.scale.numpy(), x.std(axis=0), rtol=0.1)
    raw = torch.as_tensor(toy[1][list(FAKE_FEATURES)].to_numpy(np.float32))
    with torch.no_grad():
        out = module(raw)
    assert out.shape == (len(raw), 1) and out.dtype == torch.float32
    np.testing.assert_array_equal(out[:, 0].numpy(), classifier.predict_proba(toy[1]))
    with torch.no_grad():
        np.testing.assert_allclose(torch.sigmoid(module.logits(raw)).numpy(), out.numpy(), rtol=0, atol=0)


def test_same_seed_same_model_other_seed_other_model(toy, trained):
    frame = toy[0].iloc[:1500]
    first, _ = train_classifier(frame, seed=5, **(FAST | {"epochs": 3}))
    second, _ = train_classifier(frame, seed=5, **(FAST | {"epochs": 3}))
    other, _ = train_classifier(frame, seed=6, **(FAST | {"epochs": 3}))
    p1, p2, p3 = (model.predict_proba(toy[1]) for model in (first, second, other))
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)


def test_early_stopping_restores_the_best_epoch(toy):
    """A noisy fit (large steps, tiny batches) whose validation loss wanders: the best epoch is not the last one."""
    frame = toy[0].iloc[:400]
    args = {"batch_size": 32, "learning_rate": 0.03, "validation_fraction": 0.25, "seed": 0}
    model, history = train_classifier(frame, epochs=15, patience=15, **args)
    best = model.metadata["best_epoch"]
    assert best < len(history) == 15
    # the documented split: the last 25 % of numpy.random.default_rng(seed).permutation(n) are the validation rows
    val = frame.iloc[np.random.default_rng(0).permutation(len(frame))[model.metadata["n_train"] :]]
    with torch.no_grad():
        logits = model.module.logits(torch.as_tensor(val[list(FAKE_FEATURES)].to_numpy(np.float32)))
    target = torch.as_tensor(val["is_fake"].to_numpy(np.float32))[:, None]
    val_loss = float(torch.nn.functional.binary_cross_entropy_with_logits(logits, target))
    assert val_loss == pytest.approx(history["val_loss"].min(), rel=1e-6)
    assert val_loss < history["val_loss"].iloc[-1] - 1e-3
    # patience 2: stops two epochs after the best one
    model, history = train_classifier(frame, epochs=15, patience=2, **args)
    assert len(history) == model.metadata["best_epoch"] + 2 < 15


def test_balanced_weight_and_rng_state_untouched(toy):
    frame = toy[0].iloc[:1500]
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    model, _ = train_classifier(frame, seed=0, balanced=True, hidden=(8,), **(FAST | {"epochs": 1}))
    assert torch.equal(torch.random.get_rng_state(), before)
    n_fake = model.metadata["fake_fraction_train"] * model.metadata["n_train"]
    assert model.metadata["pos_weight"] == pytest.approx((model.metadata["n_train"] - n_fake) / n_fake)
    assert [m.out_features for m in model.module.mlp if isinstance(m, torch.nn.Linear)] == [8, 1]


def test_save_load_round_trip(tmp_path, toy, trained):
    classifier, _ = trained
    path = tmp_path / "sub" / "fakeid.pt"
    classifier.save(path)
    assert path.exists() and not list(path.parent.glob(".*tmp*"))
    classifier.save(tmp_path / "other.pt")  # the same model gives the same bytes under any name (reruns stay quiet)
    assert (tmp_path / "other.pt").read_bytes() == path.read_bytes()
    loaded = FakeClassifier.load(path)
    assert loaded.features == FAKE_FEATURES and loaded.metadata == classifier.metadata
    assert loaded.module.hidden == classifier.module.hidden
    np.testing.assert_array_equal(loaded.predict_proba(toy[1]), classifier.predict_proba(toy[1]))
    checkpoint = torch.load(path, weights_only=True)
    assert {"offset", "scale"} <= set(checkpoint["state_dict"])
    torch.save({"format": 1, "state_dict": {}}, tmp_path / "regression.pt")  # e.g. a regression checkpoint
    with pytest.raises(ValueError, match="not a fake-ID checkpoint"):
        FakeClassifier.load(tmp_path / "regression.pt")


@pytest.mark.parametrize("column", ["near_dphi", "hwQual", "is_fake"])
def test_missing_column_is_named(toy, column):
    with pytest.raises(ValueError, match=column):
        train_classifier(toy[0].drop(columns=column), **FAST)


def test_bad_labels_and_inputs(toy, trained):
    frame = toy[0].iloc[:200].copy()
    for value in (True, False):
        with pytest.raises(ValueError, match="is_fake.*single class"):
            train_classifier(frame.assign(is_fake=value), **FAST)
    with pytest.raises(ValueError, match="is_fake.*boolean"):
        train_classifier(frame.assign(is_fake=2), **FAST)
    with pytest.raises(ValueError, match="near_deta.*NaN"):
        train_classifier(frame.assign(near_deta=np.nan), **FAST)
    with pytest.raises(ValueError, match="n_l1_bx"):
        trained[0].predict_proba(frame.drop(columns="n_l1_bx"))
    assert trained[0].predict_proba(frame.drop(columns="is_fake")).shape == (200,)  # no label needed to predict
