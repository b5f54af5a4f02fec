"""The hyperparameter search's expansion into models and its ranked summary."""

import numpy as np
import pytest

from l1refit.analysis.metrics import METRIC_COLUMNS
from l1refit.analysis.tables import search_table
from l1refit.analysis.tables import table2 as table2_frame
from l1refit.ml.search import cost, point_id, search_models, search_points, settings

BASE = {"loss": "logcosh", "optimizer": "adam", "regularization": None, "hidden_activation": "relu",
        "output_activation": "linear"}  # fmt: skip
HANDLES = {"loss": ["mse", "logcosh"], "optimizer": ["adam", "sgd", "adagrad"],
           "regularization": [None, {"l2": 1.0e-7}]}  # fmt: skip


def test_grid_is_every_combination_with_ids_from_the_settings():
    points = search_points({"strategy": "grid", "base": BASE, "handles": HANDLES})
    assert len(points) == 2 * 3 * 2
    assert "S_mse_sgd_l2_1em07_relu_linear" in points and "S_logcosh_adam_noreg_relu_linear" in points
    assert points["S_mse_sgd_l2_1em07_relu_linear"]["regularization"] == {"l2": 1.0e-7}
    assert len({tuple(sorted(settings(e).items())) for e in points.values()}) == 12  # all different


def test_one_at_a_time_varies_each_handle_around_the_base_and_reuses_configured_models():
    configured = {"A": BASE, "E": {**BASE, "regularization": {"l2": 1e-7}, "epochs": 80}}
    search = {"strategy": "one_at_a_time", "base": BASE, "handles": HANDLES, "epochs": 12}
    points = search_points(search, configured)
    # base, mse, sgd, adagrad, l2: the base is A and {l2: 1e-7} is E (its own epochs kept)
    assert list(points) == ["A", "S_mse_adam_noreg_relu_linear", "S_logcosh_sgd_noreg_relu_linear",
                            "S_logcosh_adagrad_noreg_relu_linear", "E"]  # fmt: skip
    assert points["E"]["epochs"] == 80 and points["S_mse_adam_noreg_relu_linear"]["epochs"] == 12
    assert list(search_models(search, configured)) == list(points)[1:4]
    assert search_points(None) == {} and search_models({}, configured) == {}
    line = cost(search, configured, 5)
    assert "5 points, 3 new models x 5 folds = 30 jobs" in line and "CPU-hours" in line


def test_point_ids_are_stable_and_valid_model_ids():
    entry = {**BASE, "regularization": {"l1": 1e-5, "l2": 2.5e-9}}
    assert point_id(entry) == "S_logcosh_adam_l1_1em05_l2_2d5em09_relu_linear"  # lossless: 2.5e-09
    assert point_id(BASE) == "S_logcosh_adam_noreg_relu_linear"


@pytest.mark.parametrize(
    ("search", "message"),
    [({"handles": {}}, "needs a base"),
     ({"base": BASE, "handles": {"dropout": [0.1]}}, "unknown handle"),
     ({"base": BASE, "handles": {"loss": []}}, "no values for loss"),
     ({"base": BASE, "handles": {"loss": ["hinge"]}}, "loss: unknown value 'hinge'"),
     ({"base": BASE, "handles": {}, "strategy": "random"}, "unknown value 'random'")],
)  # fmt: skip
def test_bad_searches_are_clear_errors(search, message):
    with pytest.raises(ValueError, match=message):
        search_points(search)


def _fold(phi_rms: float, pt_core: float) -> dict:
    values = dict.fromkeys(METRIC_COLUMNS, 1.0)
    return values | {"phi_rms": phi_rms, "pt_core": pt_core}


def test_search_table_ranks_every_metric_and_marks_the_best():
    rows = {"P": [_fold(0.10, 10.0), _fold(0.12, 12.0)],   # phi_rms 0.11, pt_core 11
            "Q": [_fold(0.08, 9.0), _fold(0.10, 9.0)],     # phi_rms 0.09 (best), pt_core 9
            "R": [_fold(0.20, 14.0), _fold(0.20, 14.0)]}  # phi_rms 0.20, pt_core 14 (best)  # fmt: skip
    entries = {"P": BASE, "Q": {**BASE, "loss": "mse"}, "R": {**BASE, "optimizer": "sgd"}}
    table = search_table(table2_frame(rows), {k: settings(v) for k, v in entries.items()}, "phi_rms")
    assert table["model"].tolist() == ["Q", "P", "R"]
    assert table["phi_rms"].to_numpy() == pytest.approx([0.09, 0.11, 0.20])
    assert table["pt_core_rank"].tolist() == [3, 2, 1]  # highest core is best
    assert table["eta_rms_rank"].tolist() == [1, 1, 1]  # ties share the best rank
    assert "phi_rms" in table.loc[0, "best"].split(";") and "pt_core" in table.loc[2, "best"].split(";")
    assert table.loc[0, "loss"] == "mse" and table.loc[2, "optimizer"] == "sgd"
    assert table.loc[1, "regularization"] == "noreg"
    assert np.isclose(table.loc[1, "phi_rms_std"], np.std([0.10, 0.12], ddof=1))
    with pytest.raises(ValueError, match="rank_by"):
        search_table(table2_frame(rows), {k: settings(v) for k, v in entries.items()}, "phi_width")
    with pytest.raises(ValueError, match="no search settings for R"):
        search_table(table2_frame(rows), {k: settings(v) for k, v in entries.items() if k != "R"}, "phi_rms")


def test_search_plot_draws_every_varied_handle(tmp_path):
    from l1refit.analysis.plots import search_plot

    rows = {name: [_fold(0.1 + 0.01 * k, 10.0), _fold(0.1 + 0.01 * k, 11.0)] for k, name in enumerate("PQR")}
    entries = {"P": BASE, "Q": {**BASE, "loss": "mse"}, "R": {**BASE, "optimizer": "sgd"}}
    table = search_table(table2_frame(rows), {k: settings(v) for k, v in entries.items()}, "phi_rms")
    fig = search_plot(table, list(settings(BASE)), tmp_path / "search", base=settings(BASE), dataset="zerobias",
                      simulation=True)  # fmt: skip
    assert len(fig.axes) == 3 * 2  # phi/eta/pT RMS x the two varied handles (loss, optimizer)
    loss_axis = fig.axes[0]  # the loss slice: P (logcosh, the base) and Q (mse), optimizer at the base
    assert [t.get_text() for t in loss_axis.get_xticklabels()] == ["logcosh", "mse"]
    assert (tmp_path / "search.png").stat().st_size > 0 and (tmp_path / "search.pdf").is_file()
