"""Cross-validation folds from event identity: pinned, balanced, seeded, stable under appending and reordering."""

import numpy as np
import pandas as pd
import pytest

from l1refit.ml.folds import assign_folds, fold_split


@pytest.fixture(scope="module")
def ids() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 100_000
    return pd.DataFrame({
        "run": rng.integers(315_000, 325_000, n).astype(np.uint32),
        "lumi": rng.integers(1, 2_000, n).astype(np.uint32),
        "event": rng.integers(0, 2**40, n).astype(np.uint64),
    })  # fmt: skip


def _folds(df: pd.DataFrame, **kw) -> np.ndarray:
    return assign_folds(df["run"].to_numpy(), df["lumi"].to_numpy(), df["event"].to_numpy(), **kw)


def test_folds_pinned_values():
    # a change of the hash would silently move events between folds of existing results: pin it
    run, lumi = [1, 1, 316000, 325000, 2**32 - 1], [1, 2, 100, 7, 65535]
    event = np.array([0, 12345, 987654321, 2**63 + 5, 2**64 - 1], dtype=np.uint64)
    assert assign_folds(run, lumi, event).tolist() == [1, 1, 3, 2, 0]
    assert assign_folds(run, lumi, event, seed=7).tolist() == [2, 1, 4, 2, 3]
    assert assign_folds(run, lumi, event, n_folds=10).tolist() == [1, 6, 8, 2, 0]
    assert assign_folds(run, lumi, event).dtype == np.int8


def test_folds_balanced_and_seeded(ids):
    folds = _folds(ids)
    np.testing.assert_allclose(np.bincount(folds, minlength=5) / folds.size, 0.2, atol=0.01)
    other = _folds(ids, seed=1)
    assert 0.17 < np.mean(other == folds) < 0.23  # independent assignments agree 1/n of the time
    assert set(np.unique(_folds(ids, n_folds=3))) == {0, 1, 2}
    with pytest.raises(ValueError, match="n_folds"):
        _folds(ids, n_folds=0)


def test_folds_stable_under_appending_and_reordering(ids):
    folds = _folds(ids)
    np.testing.assert_array_equal(_folds(ids.iloc[:60_000]), folds[:60_000])
    perm = np.random.default_rng(2).permutation(len(ids))
    np.testing.assert_array_equal(_folds(ids.iloc[perm]), folds[perm])


def test_fold_split_keeps_events_whole(ids):
    muons = ids.iloc[np.repeat(np.arange(2_000), np.arange(2_000) % 3 + 1)].reset_index(drop=True)  # 1-3 per event
    muons["muon"] = np.arange(len(muons))
    train, test = fold_split(muons, fold=2, n_folds=5, seed=0)
    assert len(train) + len(test) == len(muons) and not set(train["muon"]) & set(test["muon"])
    assert (_folds(test) == 2).all() and (_folds(train) != 2).all()
    key = ["run", "lumi", "event"]
    assert not set(map(tuple, train[key].to_numpy())) & set(map(tuple, test[key].to_numpy()))
    with pytest.raises(ValueError, match="fold"):
        fold_split(muons, fold=5, n_folds=5)
