"""Evaluation stage (workflow/rules/evaluate.smk): baselines out of fold, and the paper's Tables 1 and 2."""

from __future__ import annotations

import logging

import pandas as pd
from threadpoolctl import threadpool_limits

from l1refit.analysis.metrics import Windows, gmt_metrics, prediction_metrics
from l1refit.analysis.tables import table2 as table2_frame
from l1refit.analysis.tables import write_table1, write_table2
from l1refit.ml.baselines import gbdt_baseline, lut_baseline
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
