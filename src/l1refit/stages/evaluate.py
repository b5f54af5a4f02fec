"""Evaluation stage (workflow/rules/evaluate.smk): baselines out of fold, the paper's Tables 1 and 2, and the
hyperparameter search's summary."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from l1refit.analysis.metrics import Windows, gmt_metrics, prediction_metrics
from l1refit.analysis.tables import search_table, write_table1, write_table2
from l1refit.analysis.tables import table2 as table2_frame
from l1refit.formats.output import write_csv
from l1refit.ml.baselines import gbdt_baseline, lut_baseline
from l1refit.ml.search import HANDLES, settings
from l1refit.stages.folds import job_seed, split_rows, with_predictions, write_predictions

log = logging.getLogger(__name__)
BASELINES = {"lut": lut_baseline, "gbdt": gbdt_baseline}


def baseline(*, skim: str, name: str, training: dict, fold: int, predictions: str) -> None:
    """A non-network baseline trained on the other folds and applied to ``fold``, written like a model's output."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; allowed: {', '.join(BASELINES)}")
    train_df, test_df = split_rows(pd.read_parquet(skim), training, fold)
    kwargs = {"seed": job_seed(training, fold)} if name == "gbdt" else {}
    with threadpool_limits(1):  # one core per job, as the rule declares; OpenMP oversubscription is 40x slower
        pred = BASELINES[name](train_df, test_df, **kwargs)
    write_predictions(with_predictions(test_df, pred), predictions)
    log.info("baseline %s, fold %d: trained on %d, applied to %d muons", name, fold, len(train_df), len(test_df))


def table1(*, models: dict, csv: str, md: str) -> None:
    """Table 1: the model definitions (CSV and Markdown)."""
    write_table1(models, csv, md)


def _per_fold(paths: list[str], names: list[str], folds: list[int]) -> dict[str, dict[int, str]]:
    """{name: {fold: path}} from the expanded input list (names outer, folds inner, as Snakemake expands them)."""
    if len(paths) != len(names) * len(folds):
        raise ValueError(f"expected {len(names) * len(folds)} prediction files, got {len(paths)}")
    it = iter(paths)
    return {name: {fold: next(it) for fold in folds} for name in names}


def table2(
    *,
    model_predictions: list[str],
    baseline_predictions: list[str],
    models: list[str],
    baselines: list[str],
    folds: list[int],
    metrics: dict,
    csv: str,
    md: str,
    tex: str,
    qat_predictions: list[str] | None = None,
    qat_name: str = "QAT",
) -> pd.DataFrame:
    """Table 2: per-fold metrics of GMT (uncorrected L1), every model and baseline; mean and std over folds.
    ``qat_predictions``: the analysis model's quantisation-aware firmware out of fold, the row ``qat_name``."""
    windows = Windows.from_config(metrics)
    by_model = _per_fold(list(model_predictions), list(models), list(folds))
    if qat_predictions:
        by_model |= _per_fold(list(qat_predictions), [qat_name], list(folds))
    by_baseline = _per_fold(list(baseline_predictions), list(baselines), list(folds))
    rows: dict[str, list[dict]] = {"GMT": []}
    first = next(iter(by_model.values()))
    for fold in folds:  # GMT on exactly the rows the models are evaluated on
        rows["GMT"].append(gmt_metrics(pd.read_parquet(first[fold]), windows))
    for name, files in {**by_model, **{b.upper(): f for b, f in by_baseline.items()}}.items():
        rows[name] = [prediction_metrics(pd.read_parquet(files[fold]), windows) for fold in folds]
    table = table2_frame(rows)
    write_table2(table, csv, md, tex)
    log.info("Table 2:\n%s", table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return table


def search(*, predictions: list[str], models: list[str], entries: dict, base: dict, folds: list[int], metrics: dict,
           rank_by: str, dataset: str, simulation: bool, csv: str, png: str, pdf: str) -> pd.DataFrame:  # fmt: skip
    """The hyperparameter search's summary: every point's out-of-fold Table-2 metrics (mean ± std over folds), its
    rank per metric and the best marks (``search.csv``), and the plot of metric against handle value."""
    if Path(png).with_suffix(".pdf") != Path(pdf):
        raise ValueError(f"search plot: {png} and {pdf} must share their stem")
    windows = Windows.from_config(metrics)
    by_model = _per_fold(list(predictions), list(models), list(folds))
    rows = {name: [prediction_metrics(pd.read_parquet(files[fold]), windows) for fold in folds]
            for name, files in by_model.items()}  # fmt: skip
    table = search_table(table2_frame(rows), {name: settings(entries[name]) for name in models}, rank_by)
    write_csv(table, csv)
    from l1refit.analysis.plots import search_plot  # matplotlib: only the search job draws

    search_plot(table.set_index("model").loc[list(models)].reset_index(), HANDLES, Path(png).with_suffix(""),
                base=settings(base), dataset=dataset, simulation=simulation)  # fmt: skip
    best, shown = table.iloc[0], table[["model", *HANDLES, rank_by, f"{rank_by}_rank", "best"]]
    log.info("search: %d points ranked by %s; best %s (%s = %.4g)\n%s", len(table), rank_by, best["model"], rank_by,
             best[rank_by], shown.to_string(index=False))  # fmt: skip
    return table
