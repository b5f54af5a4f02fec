"""Fake-ID evaluation: AUC against analytic and brute-force values, the ROC curve, working points by hand, the table
and the figure."""

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.stats import norm

from l1refit.analysis.fakeid import (
    METRIC_COLUMNS,
    TABLE_COLUMNS,
    auc,
    fakeid_metrics,
    fakeid_table,
    quality_score,
    roc_curve,
    roc_plot,
    working_points,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pairwise_auc(is_fake, score):
    """Brute force: P(fake > real) + ½ P(fake == real) over every (fake, real) pair."""
    fakes, reals = score[is_fake], score[~is_fake]
    diff = fakes[:, None] - reals[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def _gaussians(n_fake, n_real, shift, sigma, seed):
    rng = np.random.default_rng(seed)
    score = np.concatenate([rng.normal(shift, sigma, n_fake), rng.normal(0.0, sigma, n_real)])
    is_fake = np.arange(n_fake + n_real) < n_fake
    return is_fake, score


# ---------------------------------------------------------------------------------------------------------------
# AUC


@pytest.mark.parametrize(("shift", "sigma"), [(0.5, 1.0), (1.0, 1.0), (2.0, 1.0), (1.0, 2.0), (-1.0, 1.0)])
def test_auc_of_two_gaussians_is_analytic(shift, sigma):
    n_fake, n_real = 20_000, 30_000
    is_fake, score = _gaussians(n_fake, n_real, shift, sigma, seed=int(10 * abs(shift) + sigma))
    expected = norm.cdf(shift / (sigma * math.sqrt(2.0)))
    # Hanley & McNeil (1982) standard error of the AUC for normal scores; 5 sigma
    q1, q2 = expected / (2 - expected), 2 * expected**2 / (1 + expected)
    var = (expected * (1 - expected) + (n_fake - 1) * (q1 - expected**2) + (n_real - 1) * (q2 - expected**2)) / (
        n_fake * n_real
    )
    assert math.sqrt(var) < 0.004
    assert auc(is_fake, score) == pytest.approx(expected, abs=5 * math.sqrt(var))
    # the rank formula is exactly the pairwise probability (on a subsample small enough for all pairs)
    sub = np.r_[0:400, n_fake : n_fake + 500]
    assert auc(is_fake[sub], score[sub]) == pytest.approx(_pairwise_auc(is_fake[sub], score[sub]), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_auc_with_ties_equals_pairwise_count(seed):
    rng = np.random.default_rng(seed)
    score = rng.integers(0, 4, 60).astype(float)  # many ties
    is_fake = rng.random(60) < 0.4
    assert auc(is_fake, score) == pytest.approx(_pairwise_auc(is_fake, score), abs=1e-12)


def test_auc_by_hand_and_extremes():
    reals, fakes = np.arange(10.0), np.array([2.0, 8.5, 9.0, 10.0])
    score, is_fake = np.r_[reals, fakes], np.r_[np.zeros(10, bool), np.ones(4, bool)]
    # fake 2 beats reals 0, 1 and ties 2: 2.5; 8.5 beats 9 reals; 9 beats 9 and ties 1: 9.5; 10 beats all 10
    assert auc(is_fake, score) == pytest.approx((2.5 + 9 + 9.5 + 10) / 40)
    assert auc([1, 1, 0, 0, 0], [5, 4, 3, 2, 1]) == 1.0
    assert auc([1, 1, 0, 0, 0], [1, 2, 3, 4, 5]) == 0.0
    assert auc([1, 1, 0, 0, 0], [7, 7, 7, 7, 7]) == 0.5
    assert auc(np.array([True, False]), [0.3, 0.3]) == 0.5


def test_input_errors():
    with pytest.raises(ValueError, match="single class"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="single class"):
        roc_curve(np.zeros(3, bool), [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        working_points([1, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        auc([1, 0], [np.nan, 0.2])
    with pytest.raises(ValueError, match="boolean"):
        auc([2, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="efficiencies"):
        working_points([1, 0], [0.1, 0.2], efficiencies=(0.0,))


# ---------------------------------------------------------------------------------------------------------------
# ROC curve and working points


def test_roc_curve_endpoints_monotonic_one_point_per_threshold_and_area_is_auc():
    is_fake, score = _gaussians(3000, 5000, 1.0, 1.0, seed=4)
    score = np.round(score, 1)  # ties
    curve = roc_curve(is_fake, score)
    distinct = np.unique(score)
    assert len(curve.threshold) == len(distinct) + 1
    np.testing.assert_array_equal(curve.threshold[1:], distinct)
    assert curve.threshold[0] == -np.inf
    assert (curve.real_efficiency[0], curve.fake_rejection[0]) == (0.0, 1.0)
    assert (curve.real_efficiency[-1], curve.fake_rejection[-1]) == (1.0, 0.0)
    assert np.all(np.diff(curve.real_efficiency) >= 0) and np.all(np.diff(curve.fake_rejection) <= 0)
    # every point is the cut "keep score <= t", counted directly
    for i in (1, len(distinct) // 3, len(distinct) // 2, len(distinct)):
        kept = score <= curve.threshold[i]
        assert curve.real_efficiency[i] == np.mean(kept[~is_fake])
        assert curve.fake_rejection[i] == pytest.approx(1 - np.mean(kept[is_fake]), abs=1e-15)
    eff, rej = curve.real_efficiency, curve.fake_rejection
    area = float(np.sum(np.diff(eff) * (rej[1:] + rej[:-1]) / 2))
    assert area == pytest.approx(auc(is_fake, score), abs=1e-12)


def test_working_points_by_hand():
    reals, fakes = np.arange(10.0), np.array([2.0, 8.5, 9.0, 10.0])
    score, is_fake = np.r_[fakes, reals], np.r_[np.ones(4, bool), np.zeros(10, bool)]
    wp = working_points(is_fake, score, efficiencies=(0.5, 0.85, 0.95, 1.0))
    assert list(wp.columns) == ["real_efficiency_target", "threshold", "real_efficiency", "fake_rejection"]
    # 50 %: 5 reals kept -> score <= 4 (reals 0..4); fakes kept: {2} -> rejection 3/4
    # 85 %: 8.5 -> 9 reals -> score <= 8; fakes kept {2} -> 3/4
    # 95 %: 9.5 -> 10 reals -> score <= 9 (fake 9 ties the last real and is kept): fakes kept {2, 8.5, 9} -> 1/4
    # 100 %: the same cut
    np.testing.assert_array_equal(wp["real_efficiency_target"], [0.5, 0.85, 0.95, 1.0])
    np.testing.assert_array_equal(wp["threshold"], [4.0, 8.0, 9.0, 9.0])
    np.testing.assert_array_equal(wp["real_efficiency"], [0.5, 0.9, 1.0, 1.0])
    np.testing.assert_array_equal(wp["fake_rejection"], [0.75, 0.75, 0.25, 0.25])
    # exactly at a count: 7 % of 100 reals is 7 reals although 0.07 * 100 = 7.000000000000001 in floating point
    score100 = np.r_[np.arange(100.0), [1000.0]]
    wp = working_points(np.r_[np.zeros(100, bool), True], score100, efficiencies=(0.95, 0.07, 0.14))
    np.testing.assert_array_equal(wp["threshold"], [94.0, 6.0, 13.0])
    np.testing.assert_array_equal(wp["real_efficiency"], [0.95, 0.07, 0.14])
    np.testing.assert_array_equal(wp["fake_rejection"], [1.0, 1.0, 1.0])


def test_quality_score_is_the_quality_cut():
    frame = pd.DataFrame({"hwQual": [15, 12, 13, 8, 14, 12], "is_fake": [False, True, False, True, False, True]})
    score = quality_score(frame)
    np.testing.assert_array_equal(score, [-15.0, -12.0, -13.0, -8.0, -14.0, -12.0])
    wp = working_points(frame["is_fake"], score, efficiencies=(0.6, 1.0))
    # 60 % of 3 reals -> 2: keep quality >= 14 (threshold -14), all fakes removed; 100 %: quality >= 13, too
    np.testing.assert_array_equal(wp["threshold"], [-14.0, -13.0])
    np.testing.assert_array_equal(wp["fake_rejection"], [1.0, 1.0])
    assert auc(frame["is_fake"], score) == 1.0
    with pytest.raises(ValueError, match="hwQual"):
        quality_score(frame.drop(columns="hwQual"))


# ---------------------------------------------------------------------------------------------------------------
# table and figure


def test_fakeid_table_means_and_stds():
    rows = []
    for fold in range(3):
        rows.append({"method": "mlp", "fold": fold, "auc": 0.9 + 0.01 * fold, "rejection_at_95": 0.5 + 0.1 * fold,
                     "rejection_at_98": 0.4, "rejection_at_99": 0.3})  # fmt: skip
    rows.append({"method": "quality", "fold": 0, **fakeid_metrics([1, 1, 0, 0], [2, 0, 1, 0])})
    table = fakeid_table(rows)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table[["method", "fold"]].values.tolist() == [
        ["mlp", 0], ["mlp", 1], ["mlp", 2], ["mlp", "mean"], ["quality", 0], ["quality", "mean"]
    ]  # fmt: skip
    mean = table.iloc[3]
    assert mean["auc"] == pytest.approx(0.91) and mean["auc_std"] == pytest.approx(0.01)
    assert mean["rejection_at_95"] == pytest.approx(0.6) and mean["rejection_at_95_std"] == pytest.approx(0.1)
    assert mean["rejection_at_98_std"] == pytest.approx(0.0, abs=1e-15)
    assert table.iloc[:3][[f"{c}_std" for c in METRIC_COLUMNS]].isna().all().all()
    quality = table.iloc[4]
    # scores: fakes 2, 0; reals 1, 0 -> pairs: 2>1, 2>0, 0<1, 0=0 -> (1 + 1 + 0 + 0.5) / 4
    assert quality["auc"] == pytest.approx(0.625)
    # 95 % of 2 reals -> both: keep score <= 1, fake 0 kept, fake 2 removed
    assert quality["rejection_at_95"] == 0.5 and quality["rejection_at_99"] == 0.5
    assert table.iloc[5][[f"{c}_std" for c in METRIC_COLUMNS]].isna().all()  # one fold: no spread
    with pytest.raises(ValueError, match="missing rejection_at_98, rejection_at_99"):
        fakeid_table([rows[0], {"method": "quality", "fold": 0, "auc": 0.9, "rejection_at_95": 0.5}])
    with pytest.raises(ValueError, match="rejection_at_<efficiency>"):
        fakeid_table([{"method": "mlp", "fold": 0, "auc": 0.9}])
    other = fakeid_table([{"method": "mlp", "fold": 0, "auc": 0.9, "rejection_at_90": 0.7}])  # other efficiencies
    assert list(other.columns) == ["method", "fold", "auc", "rejection_at_90", "auc_std", "rejection_at_90_std"]
    with pytest.raises(ValueError, match="twice"):
        fakeid_table([rows[0], rows[0]])


def test_roc_plot(tmp_path):
    curves = {"mlp": [], "quality": []}
    for fold in range(2):
        is_fake, score = _gaussians(20_000, 30_000, 2.5, 1.0, seed=fold)
        curves["mlp"].append((is_fake, score))
        curves["quality"].append((is_fake, np.round(score)))
    fig = roc_plot(curves, tmp_path / "roc.png", tmp_path / "roc.pdf", dataset="toy")
    png = (tmp_path / "roc.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 20_000
    with Image.open(tmp_path / "roc.png") as image:
        assert image.width >= 800 and image.height >= 500
    assert (tmp_path / "roc.pdf").read_bytes()[:5] == b"%PDF-"
    assert not list(tmp_path.glob(".*tmp*"))
    (ax,) = fig.axes
    assert ax.get_xlim() == pytest.approx((0.8, 1.002)) and ax.get_xlabel() and ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for method, folds in curves.items():  # one entry per method: the mean AUC over folds and its spread
        aucs = np.array([auc(is_fake, score) for is_fake, score in folds])
        name = "MLP" if method == "mlp" else "quality cut"
        assert f"{name}: AUC {aucs.mean():.4f} ± {aucs.std(ddof=1):.4f} ({len(folds)} folds)" in legend
    assert sum("working point" in text for text in legend) == 3
    # the thinned curve drawn stays on the full curve (its points are a subset of the ROC points)
    full = roc_curve(*curves["mlp"][0])
    line = ax.get_lines()[0]
    assert len(line.get_xdata()) <= 4002
    drawn = set(zip(line.get_xdata(), line.get_ydata(), strict=True))
    assert drawn <= set(zip(full.real_efficiency, full.fake_rejection, strict=True))
