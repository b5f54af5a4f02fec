"""Folds from event identity, Table-2 metrics and summary, the LUT and GBDT baselines, and the table writers."""

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from l1refit.evaluate import (
    METRIC_COLUMNS,
    TABLE2_COLUMNS,
    gbdt_baseline,
    gmt_metrics,
    lut_baseline,
    prediction_metrics,
    table2,
    write_table1,
    write_table2,
)
from l1refit.folds import assign_folds, fold_split
from l1refit.metrics import paper_row
from l1refit.scales import ETA_LSB, PHI_LSB, wrap_phi

PRED = ["pred_phi", "pred_eta", "pred_pt"]


# ---------------------------------------------------------------------------------------------------------------
# folds


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


# ---------------------------------------------------------------------------------------------------------------
# metrics


def test_gmt_and_prediction_metrics_hand_values():
    df = pd.DataFrame({
        "l1_phi": [3.14, 0.0, 0.2, 1.0], "l1_eta": [0.5] * 4, "l1_pt": [10.0, 10.05, 12.0, 20.0],
        "reco_phi": [-3.14, 0.005, 0.0, 1.0], "reco_eta": [0.5, 0.499, 0.45, 0.6], "reco_pt": [10.0] * 4,
    })  # fmt: skip
    m = gmt_metrics(df)
    assert list(m) == list(METRIC_COLUMNS)
    dphi = np.array([6.28 - 2 * np.pi, -0.005, 0.2, 0.0])
    assert m["phi_rms"] == pytest.approx(np.sqrt(np.mean(dphi**2)))
    assert m["eta_rms"] == pytest.approx(np.sqrt(np.mean(np.array([0.0, 0.001, 0.05, -0.1]) ** 2)))
    assert m["pt_rms"] == pytest.approx(np.sqrt(np.mean(np.array([0.0, 0.005, 0.2, 1.0]) ** 2)))
    assert (m["phi_core"], m["eta_core"], m["pt_core"]) == (75.0, 50.0, 50.0)
    assert (m["phi_tail"], m["eta_tail"], m["pt_tail"]) == (25.0, 25.0, 50.0)
    perfect = prediction_metrics(df.assign(pred_phi=df.reco_phi, pred_eta=df.reco_eta, pred_pt=df.reco_pt))
    assert perfect["phi_rms"] == perfect["eta_rms"] == perfect["pt_rms"] == 0.0
    assert perfect["pt_core"] == 100.0 and perfect["pt_tail"] == 0.0


# ---------------------------------------------------------------------------------------------------------------
# baselines


def _muons(hw_pt, hw_eta, charge, hw_phi, offsets) -> pd.DataFrame:
    """A skim-like frame whose offline values are L1 minus the given offsets (φ wrapped)."""
    l1_pt, l1_eta, l1_phi = (hw_pt - 1) * 0.5, hw_eta * ETA_LSB, wrap_phi(hw_phi * PHI_LSB)
    dphi, deta, dpt = offsets(hw_pt, hw_eta, charge)
    return pd.DataFrame({
        "hwPt": hw_pt, "hwEtaAtVtx": hw_eta, "hwPhiAtVtx": hw_phi, "charge": charge,
        "l1_pt": l1_pt, "l1_eta": l1_eta, "l1_phi": l1_phi,
        "reco_pt": l1_pt - dpt, "reco_eta": l1_eta - deta, "reco_phi": wrap_phi(l1_phi - dphi),
    })  # fmt: skip


def _cell_offsets(hw_pt, hw_eta, charge):
    """Offsets that are a deterministic function of the (hwPt, hwEtaAtVtx, charge) cell."""
    return 0.3 * charge / hw_pt, 0.002 * np.sin(hw_eta) + 0.001 * charge, 0.1 * (hw_pt - 1) * 0.5 + 0.01 * hw_eta


def test_lut_recovers_a_cell_function_exactly():
    pt, eta, q = np.meshgrid(np.arange(5, 15), np.arange(-10, 10), [-1, 1], indexing="ij")
    grid = [a.ravel() for a in (pt, eta, q)]
    rng = np.random.default_rng(3)
    train = _muons(*(np.tile(a, 25) for a in grid), rng.integers(0, 576, 25 * grid[0].size), _cell_offsets)
    pick = rng.integers(0, grid[0].size, 3_000)
    test = _muons(*(a[pick] for a in grid), rng.integers(0, 576, pick.size), _cell_offsets)
    out = lut_baseline(train, test)
    assert out.index.equals(test.index) and list(out.columns) == [*test.columns, *PRED]
    for var in ("phi", "eta", "pt"):
        np.testing.assert_allclose(out[f"pred_{var}"], out[f"reco_{var}"], atol=1e-12)
    m = prediction_metrics(out)
    assert max(m["phi_rms"], m["eta_rms"], m["pt_rms"]) < 1e-12
    assert (m["phi_core"], m["eta_core"], m["pt_core"], m["pt_tail"]) == (100.0, 100.0, 100.0, 0.0)
    again = lut_baseline(train, test)
    for col in PRED:
        np.testing.assert_array_equal(again[col].to_numpy(), out[col].to_numpy())


def _noisy_sample(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hw_pt, hw_eta = rng.integers(6, 60, n), rng.integers(-80, 80, n)
    charge, hw_phi = rng.choice([-1, 1], n), rng.integers(0, 576, n)

    def offsets(pt, eta, q):
        dphi, deta, dpt = _cell_offsets(pt, eta, q)
        return dphi + rng.normal(0, 0.005, n), deta + rng.normal(0, 0.0005, n), dpt + rng.normal(0, 0.05, n)

    return _muons(hw_pt, hw_eta, charge, hw_phi, offsets)


def test_gbdt_learns_an_offset_and_is_deterministic():
    train, test = _noisy_sample(4, 4_000), _noisy_sample(5, 2_000)
    with threadpool_limits(1, user_api="openmp"):  # tiny fits: OpenMP threads only contend on a loaded runner
        out = gbdt_baseline(train, test, seed=0, max_iter=60)
        again = gbdt_baseline(train, test, seed=0, max_iter=60)
    gmt, fitted = gmt_metrics(test), prediction_metrics(out)
    for var in ("phi", "eta", "pt"):
        assert fitted[f"{var}_rms"] < 0.5 * gmt[f"{var}_rms"], var
    for col in PRED:
        np.testing.assert_array_equal(again[col].to_numpy(), out[col].to_numpy())


# ---------------------------------------------------------------------------------------------------------------
# tables


def _fold(base: float) -> dict[str, float]:
    return {c: base + i for i, c in enumerate(METRIC_COLUMNS)}


def test_table2_mean_and_sample_std():
    table = table2({"GMT": [_fold(1.0), _fold(2.0), _fold(3.0)], "B": [_fold(0.5), _fold(1.0)], "LUT": [_fold(0.0)]})
    assert list(table.columns) == list(TABLE2_COLUMNS) and list(table["model"]) == ["GMT", "B", "LUT"]
    assert table.loc[0, "phi_rms"] == 2.0 and table.loc[0, "pt_tail"] == 10.0
    assert table.loc[0, "phi_rms_std"] == pytest.approx(1.0)  # sample std of 1, 2, 3
    assert table.loc[1, "eta_core"] == pytest.approx(4.75)
    assert table.loc[1, "eta_core_std"] == pytest.approx(np.sqrt(0.125))  # (0.25² + 0.25²) / (2 − 1)
    assert table.loc[2, [f"{c}_std" for c in METRIC_COLUMNS]].isna().all()  # one fold: no spread to quote
    with pytest.raises(ValueError, match="pt_tail"):
        table2({"A": [{c: 0.0 for c in METRIC_COLUMNS[:-1]}]})


def test_write_table2_formats_and_is_byte_stable(tmp_path):
    table = table2({"GMT": [paper_row("GMT")] * 2, "model_B": [_fold(0.1), _fold(0.1 + 1 / 3)]})
    paths = [tmp_path / "table2.csv", tmp_path / "table2.md", tmp_path / "table2.tex"]
    write_table2(table, *paths)
    first = [p.read_bytes() for p in paths]
    write_table2(table, *paths)
    assert [p.read_bytes() for p in paths] == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table2.csv", "table2.md", "table2.tex"]  # no temp left
    back = pd.read_csv(paths[0])
    assert list(back.columns) == list(TABLE2_COLUMNS)
    np.testing.assert_allclose(back["phi_rms"], table["phi_rms"], rtol=1e-5)
    md = first[1].decode()
    assert "| GMT | **0.166** ± 0.000 | **0.034** ± 0.000 |" in md  # best mean in bold, paper precision
    assert "| model_B | 0.267 ± 0.236 |" in md and "**6.27** ± 0.24" in md
    tex = first[2].decode()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"model\_B &" in tex and r"$\pm$" in tex


def test_write_table1(tmp_path):
    models = {
        "A": {"loss": "logcosh", "optimizer": "adam", "regularization": None, "hidden_activation": "relu",
              "output_activation": "linear"},
        "C": {"loss": "logcosh", "optimizer": "adadelta", "regularization": {"l2": 1.0e-7},
              "hidden_activation": "relu", "output_activation": "linear", "epochs": 3},
    }  # fmt: skip
    write_table1(models, tmp_path / "table1.csv")
    table = pd.read_csv(tmp_path / "table1.csv")
    assert list(table.columns) == ["model", "loss", "optimizer", "regularization", "hidden_activation",
                                   "output_activation"]  # fmt: skip
    assert table["regularization"].tolist() == ["none", "L2 λ=1e-07"]
    assert "| C | logcosh | adadelta | L2 λ=1e-07 | relu | linear |" in (tmp_path / "table1.md").read_text()
    with pytest.raises(ValueError, match="loss"):
        write_table1({"X": {k: v for k, v in models["A"].items() if k != "loss"}}, tmp_path / "bad.csv")
