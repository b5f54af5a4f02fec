"""Evaluation of L1-muon fake identification: ROC curve, AUC, working points, the quality-cut baseline, table, figure.

Conventions (one for every function here):

* a *score* is fake-like: the higher, the more likely the muon is fake (the MLP's fake probability, or
  :func:`quality_score` for the quality-cut-alone baseline);
* real muons are the signal; a cut at threshold ``t`` **keeps the muons with score <= t**;
* ``real_efficiency(t)`` = fraction of the real muons kept, ``fake_rejection(t)`` = fraction of the fakes removed
  (score > t);
* the AUC is the probability that a random fake scores higher than a random real muon, ties counting one half
  (Mann–Whitney U / (n_fake · n_real)); it equals the area under fake_rejection vs real_efficiency with straight
  segments between the ROC points. 1: perfect, 0.5: no separation, 0: perfectly inverted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import rankdata

from l1refit.analysis.plots import cms_figure, cms_label
from l1refit.formats.output import atomic_path

EFFICIENCIES = (0.95, 0.98, 0.99)  # the working points' real-muon efficiency targets
METHODS = ("mlp", "quality")  # the MLP and the quality-cut-alone baseline
METHOD_LABELS = {"mlp": "MLP", "quality": "quality cut"}
METHOD_COLORS = {"mlp": "tab:red", "quality": "tab:blue"}
WP_MARKERS = ("o", "s", "^", "D", "v")


def rejection_column(efficiency: float) -> str:
    """Table column of the fake rejection at a real efficiency: 0.95 → ``rejection_at_95``, 0.995 → ``..._99.5``."""
    return f"rejection_at_{efficiency * 100:g}"


METRIC_COLUMNS = ("auc", *(rejection_column(e) for e in EFFICIENCIES))
STD_COLUMNS = tuple(f"{c}_std" for c in METRIC_COLUMNS)
TABLE_COLUMNS = ("method", "fold", *METRIC_COLUMNS, *STD_COLUMNS)


class RocCurve(NamedTuple):
    """One point per distinct score threshold, plus the keep-nothing point first.

    ``threshold`` strictly increasing (first −inf, last the largest score); ``real_efficiency`` non-decreasing from
    0 to 1; ``fake_rejection`` non-increasing from 1 to 0. Point i is the cut "keep score <= threshold[i]".
    """

    real_efficiency: np.ndarray
    fake_rejection: np.ndarray
    threshold: np.ndarray


def _inputs(is_fake, score) -> tuple[np.ndarray, np.ndarray]:
    """Validated bool labels and float64 scores: 1-D, same length, no NaN score, both classes present."""
    fake = np.asarray(is_fake)
    if fake.dtype != bool:
        if not np.isin(fake, (0, 1)).all():
            raise ValueError("is_fake must be boolean (or 0/1)")
        fake = fake.astype(bool)
    score = np.asarray(score, dtype=np.float64)
    if fake.ndim != 1 or score.shape != fake.shape:
        raise ValueError(f"is_fake and score must be 1-D of the same length, got shapes {fake.shape}, {score.shape}")
    if np.isnan(score).any():
        raise ValueError("score contains NaN")
    if fake.all() or not fake.any():
        raise ValueError("is_fake has a single class: the ROC needs both fakes and real muons")
    return fake, score


def _cumulative(fake: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores (ascending) and the numbers of real muons and fakes with score <= each (one sort)."""
    order = np.argsort(score, kind="stable")
    s, f = score[order], fake[order]
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last position of each distinct score
    kept_fake = np.cumsum(f, dtype=np.int64)[last]
    return s[last], last + 1 - kept_fake, kept_fake


def roc_curve(is_fake, score) -> RocCurve:
    """Real efficiency and fake rejection of the cuts "keep score <= t" over every distinct score ``t``.

    Vectorised (one sort, cumulative sums); tied scores make one point. See :class:`RocCurve`.
    """
    fake, score = _inputs(is_fake, score)
    thresholds, kept_real, kept_fake = _cumulative(fake, score)
    n_fake = int(fake.sum())
    n_real = len(fake) - n_fake
    return RocCurve(
        real_efficiency=np.concatenate([[0.0], kept_real / n_real]),
        fake_rejection=np.concatenate([[1.0], (n_fake - kept_fake) / n_fake]),
        threshold=np.concatenate([[-np.inf], thresholds]),
    )


def auc(is_fake, score) -> float:
    """P(score of a random fake > score of a random real muon) + ½ P(equal): Mann–Whitney U with midranks."""
    fake, score = _inputs(is_fake, score)
    n_fake = int(fake.sum())
    n_real = len(fake) - n_fake
    rank_sum = float(rankdata(score, method="average")[fake].sum())
    return (rank_sum - n_fake * (n_fake + 1) / 2.0) / (n_fake * n_real)


def working_points(is_fake, score, efficiencies: Sequence[float] = EFFICIENCIES) -> pd.DataFrame:
    """The tightest cut "keep score <= threshold" that keeps at least each target fraction of the real muons.

    ``threshold`` is the smallest observed score t with real_efficiency(t) >= target (so the cut keeping the most
    fakes out, i.e. the largest fake rejection, at that efficiency); always a real muon's score. Columns:
    ``real_efficiency_target``, ``threshold``, ``real_efficiency`` (reached, >= the target) and ``fake_rejection``.
    Targets must be in (0, 1]; "at least" is judged on counts: kept reals >= target × n_real (up to 1e-9 of a muon,
    so 0.95 of 100 is 95).
    """
    fake, score = _inputs(is_fake, score)
    targets = np.asarray(efficiencies, dtype=np.float64)
    if targets.ndim != 1 or not np.all((targets > 0) & (targets <= 1)):
        raise ValueError(f"efficiencies must be in (0, 1], got {efficiencies}")
    thresholds, kept_real, kept_fake = _cumulative(fake, score)
    n_fake = int(fake.sum())
    n_real = len(fake) - n_fake
    need = np.ceil(targets * n_real - 1e-9)
    index = np.searchsorted(kept_real, need, side="left")  # kept_real is non-decreasing and ends at n_real
    return pd.DataFrame({
        "real_efficiency_target": targets,
        "threshold": thresholds[index],
        "real_efficiency": kept_real[index] / n_real,
        "fake_rejection": (n_fake - kept_fake[index]) / n_fake,
    })  # fmt: skip


def quality_score(frame: pd.DataFrame) -> np.ndarray:
    """The quality cut alone as a score: ``-hwQual`` (float64), so a lower quality is more fake-like.

    With the functions above, "keep score <= t" is "keep hwQual >= −t": the quality-cut baseline.
    """
    if "hwQual" not in frame.columns:
        raise ValueError("quality_score: column hwQual not in the table")
    return -frame["hwQual"].to_numpy(dtype=np.float64)


def fakeid_metrics(is_fake, score, efficiencies: Sequence[float] = EFFICIENCIES) -> dict[str, float]:
    """One fold's row for :func:`fakeid_table`: ``auc`` and ``rejection_at_XX`` per target efficiency."""
    wp = working_points(is_fake, score, efficiencies)
    out = {"auc": auc(is_fake, score)}
    for target, rejection in zip(wp["real_efficiency_target"], wp["fake_rejection"], strict=True):
        out[rejection_column(target)] = float(rejection)
    return out


def fakeid_table(rows: Iterable[Mapping]) -> pd.DataFrame:
    """Per-fold results to the fake-ID table: one row per (method, fold), then one ``fold="mean"`` row per method.

    ``rows``: mappings with ``method`` (e.g. "mlp", "quality"), ``fold``, ``auc`` and ``rejection_at_XX`` columns
    (as :func:`fakeid_metrics` gives them; :data:`METRIC_COLUMNS` for the default efficiencies). The fold rows keep
    their values and have NaN ``*_std``; the mean row has the mean over the method's folds and, in ``*_std``, the
    sample standard deviation (ddof=1, NaN with a single fold, as :func:`l1refit.analysis.tables.table2`). Methods
    appear in first-seen order, folds in given order.
    """
    frame = pd.DataFrame(list(rows))
    metrics = ["auc", *(c for c in frame.columns if c.startswith("rejection_at_"))]
    missing = [c for c in ("method", "fold", *metrics) if c not in frame.columns or frame[c].isna().any()]
    if len(metrics) == 1:
        missing.append("rejection_at_<efficiency>")
    if frame.empty or missing:
        raise ValueError(f"fakeid_table: need rows with columns method, fold, auc, rejection_at_<efficiency>; "
                         f"missing {', '.join(missing) or 'all rows'}")  # fmt: skip
    if frame.duplicated(["method", "fold"]).any():
        raise ValueError("fakeid_table: a (method, fold) pair appears twice")
    records = []
    for method, folds in frame.groupby("method", sort=False):
        values = folds[metrics].to_numpy(dtype=np.float64)
        nan = [math.nan] * len(metrics)
        records += [[method, fold, *row, *nan] for fold, row in zip(folds["fold"], values, strict=True)]
        std = values.std(axis=0, ddof=1) if len(values) > 1 else nan
        records.append([method, "mean", *values.mean(axis=0), *std])
    table = pd.DataFrame(records, columns=["method", "fold", *metrics, *(f"{c}_std" for c in metrics)])
    table["fold"] = table["fold"].astype(object)
    return table


# ---------------------------------------------------------------------------------------------------------------
# figure


def _thinned(curve: RocCurve, max_points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """At most ~``max_points`` points of the curve, evenly spaced along real_efficiency + (1 − fake_rejection).

    That sum grows monotonically from 0 to 2 along the curve, so steep and flat parts keep their resolution and the
    straight lines between kept points stay within 2/max_points of the full curve. Endpoints are kept.
    """
    eff, rej = curve.real_efficiency, curve.fake_rejection
    if len(eff) <= max_points:
        return eff, rej
    path = eff + (1.0 - rej)
    keep = np.unique(np.searchsorted(path, np.linspace(0.0, 2.0, max_points), side="left").clip(0, len(eff) - 1))
    keep = np.unique(np.concatenate([[0], keep, [len(eff) - 1]]))
    return eff[keep], rej[keep]


def roc_plot(curves: Mapping[str, Sequence[tuple]], path_png: str | Path, path_pdf: str | Path, *,
             efficiencies: Sequence[float] = EFFICIENCIES, x_range: tuple[float, float] = (0.8, 1.0),
             dataset: str = "", simulation: bool = True) -> Figure:  # fmt: skip
    """Fake rejection vs real efficiency: one thin line per method and fold, the working points marked.

    ``curves``: method ("mlp", "quality", …) → per-fold ``(is_fake, score)`` pairs (fold = position). Each method's
    legend entry has its mean AUC ± the spread over folds; the working points (:func:`working_points` at
    ``efficiencies``) are markers, one shape per target, and dotted verticals mark the targets. x is zoomed to
    ``x_range`` (the useful, high-efficiency part; 1 % of it is added on the right, so points at efficiency 1 are not
    cut).
    Written as PNG and PDF (atomically each, Agg canvas, CMS style); returns the figure.
    """
    palette = matplotlib.colormaps["tab10"].colors
    with cms_figure() as (fig, (ax,)):
        for i, (method, folds) in enumerate(curves.items()):
            colour = METHOD_COLORS.get(method, palette[(i + 2) % len(palette)])
            aucs = np.array([auc(is_fake, score) for is_fake, score in folds])
            spread = f" ± {aucs.std(ddof=1):.4f}" if aucs.size > 1 else ""
            label = f"{METHOD_LABELS.get(method, method)}: AUC {aucs.mean():.4f}{spread} ({aucs.size} folds)"
            for fold, (is_fake, score) in enumerate(folds):
                eff, rej = _thinned(roc_curve(is_fake, score))
                ax.plot(eff, rej, color=colour, lw=1.0, alpha=0.8, label=None if fold else label,
                        ls="-" if method == "mlp" else "--")  # fmt: skip
                wp = working_points(is_fake, score, efficiencies)
                for marker, (_, point) in zip(WP_MARKERS, wp.iterrows(), strict=False):
                    ax.plot(point["real_efficiency"], point["fake_rejection"], marker=marker, ms=7, color=colour,
                            mfc="white", ls="none")  # fmt: skip
        for marker, target in zip(WP_MARKERS, efficiencies, strict=False):
            ax.axvline(target, color="grey", ls=":", lw=1)
            ax.plot([], [], marker=marker, ms=7, color="black", mfc="white", ls="none",
                    label=f"working point {target:.0%} real eff.")  # fmt: skip
        low, high = x_range
        ax.set_xlim(low, high + 0.01 * (high - low))  # a margin, so working points at efficiency 1 stay visible
        ax.set_ylim(0.0, 1.1)  # room for the legend above the curves
        ax.set_xlabel("real-muon efficiency (kept / real)")
        ax.set_ylabel("fake rejection (removed / fakes)")
        ax.legend(fontsize="x-small", loc="upper right")
        cms_label(ax, dataset, simulation)
        for path, fmt in ((path_png, "png"), (path_pdf, "pdf")):
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=100)
    return fig
