"""Table-2 metrics of a prediction table and of its uncorrected L1 values, the Table-2 summary, the table writers."""

import numpy as np
import pandas as pd
import pytest

from l1refit.analysis.metrics import METRIC_COLUMNS, gmt_metrics, paper_row, prediction_metrics
from l1refit.analysis.tables import TABLE2_COLUMNS, table2, write_table1, write_table2

# ---------------------------------------------------------------------------------------------------------------
# metrics of a prediction table


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
    write_table1(models, tmp_path / "table1.csv", tmp_path / "table1.md")
    table = pd.read_csv(tmp_path / "table1.csv")
    assert list(table.columns) == ["model", "loss", "optimizer", "regularization", "hidden_activation",
                                   "output_activation"]  # fmt: skip
    assert table["regularization"].tolist() == ["none", "L2 λ=1e-07"]
    assert "| C | logcosh | adadelta | L2 λ=1e-07 | relu | linear |" in (tmp_path / "table1.md").read_text()
    with pytest.raises(ValueError, match="loss"):
        no_loss = {"X": {k: v for k, v in models["A"].items() if k != "loss"}}
        write_table1(no_loss, tmp_path / "bad.csv", tmp_path / "bad.md")
