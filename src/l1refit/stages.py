"""The training and evaluation stages as the workflow runs them: file in, file out, one call per job.

Each function reads its inputs, does one job of the fan-out (train a model on the training folds, predict the
held-out fold, run a baseline, assemble Table 2) and writes its outputs atomically. They are what the
``workflow/scripts`` adapters call, and they are usable from a notebook without Snakemake.

Seeds: a training job of fold k uses ``seed * 1000 + k + 1`` (the final training on all folds ``seed * 1000``), so
every fold has its own, reproducible stream and every model of Table 1 starts from the same one for the same fold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .evaluate import gbdt_baseline, gmt_metrics, lut_baseline, prediction_metrics, table2, write_table2
from .folds import fold_split
from .io import atomic_path
from .metrics import Windows
from .model import ModelSpec
from .train import TrainedModel, train_and_save

BASELINES = {"lut": lut_baseline, "gbdt": gbdt_baseline}
PREDICTION_COLUMNS = ("pred_phi", "pred_eta", "pred_pt")


def job_seed(training: dict, fold: int) -> int:
    """The seed of one training job (fold = −1: the final training on all folds)."""
    return int(training["seed"]) * 1000 + fold + 1


def _split(skim: pd.DataFrame, training: dict, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    if fold < 0:
        return skim, skim.iloc[:0]
    return fold_split(skim, fold, training["folds"], training["seed"])


def run_training(skim_path, spec_config: dict, training: dict, fold: int, *, model_path, history_path, plot_path):
    """Train one Table-1 model on every fold but ``fold`` (all folds for −1) and save model, history and plot."""
    skim = pd.read_parquet(skim_path)
    train_df, _ = _split(skim, training, fold)
    entry = {k: v for k, v in spec_config.items() if k != "id"}
    spec = ModelSpec.from_config(entry, hidden=tuple(training["hidden"]))
    label = f"model {spec_config.get('id', '?')}, " + (f"fold {fold}" if fold >= 0 else "all folds")
    print(f"training {label} on {len(train_df)} muons: {spec}", flush=True)
    train_and_save(
        train_df,
        spec,
        model_path=model_path,
        history_path=history_path,
        plot_path=plot_path,
        title=label,
        metadata={"model": str(spec_config.get("id", "")), "fold": int(fold), "training": dict(training)},
        inputs=tuple(training["inputs"]),
        epochs=training["epochs"],
        batch_size=training["batch_size"],
        patience=training["patience"],
        validation_fraction=training["validation_fraction"],
        pt_target=training["pt_target"],
        target_clip=training["target_clip"],
        target_scale=training["target_scale"],
        seed=job_seed(training, fold),
        threads=1,
    )


def _with_predictions(test_df: pd.DataFrame, pred) -> pd.DataFrame:
    """The test rows with the prediction columns beside them (by position: ``pred`` may be a dict or a frame)."""
    out = test_df.reset_index(drop=True).copy()
    for column in PREDICTION_COLUMNS:
        out[column] = np.asarray(pred[column])
    return out


def _write_parquet(df: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def run_prediction(model_path, skim_path, training: dict, fold: int, output) -> None:
    """Out-of-fold predictions: the skim rows of ``fold`` with the model's corrected φ, η, pT beside them."""
    _, test_df = _split(pd.read_parquet(skim_path), training, fold)
    model = TrainedModel.load(model_path)
    out = _with_predictions(test_df, model.predict(test_df))
    _write_parquet(out, output)
    print(f"fold {fold}: {len(out)} muons predicted", flush=True)


def run_baseline(name: str, skim_path, training: dict, fold: int, output) -> None:
    """A non-network baseline trained on the other folds and applied to ``fold``, written like a model's output."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; allowed: {', '.join(BASELINES)}")
    train_df, test_df = _split(pd.read_parquet(skim_path), training, fold)
    kwargs = {"seed": job_seed(training, fold)} if name == "gbdt" else {}
    with threadpool_limits(1):  # one core per job, as the rule declares; OpenMP oversubscription is 40x slower
        pred = BASELINES[name](train_df, test_df, **kwargs)
    _write_parquet(_with_predictions(test_df, pred), output)
    print(f"baseline {name}, fold {fold}: trained on {len(train_df)}, applied to {len(test_df)} muons", flush=True)


def _per_fold(paths: list[str], names: list[str], folds: list[int]) -> dict[str, dict[int, str]]:
    """{name: {fold: path}} from the expanded input list (names outer, folds inner, as Snakemake expands them)."""
    if len(paths) != len(names) * len(folds):
        raise ValueError(f"expected {len(names) * len(folds)} prediction files, got {len(paths)}")
    it = iter(paths)
    return {name: {fold: next(it) for fold in folds} for name in names}


def run_table2(
    model_paths, baseline_paths, *, models, baselines, folds, metrics_config, csv_path, md_path, tex_path
) -> pd.DataFrame:
    """Table 2: per fold metrics of GMT (uncorrected L1), every model and every baseline; mean and std over folds."""
    windows = Windows.from_config(metrics_config)
    by_model = _per_fold(list(model_paths), list(models), list(folds))
    by_baseline = _per_fold(list(baseline_paths), list(baselines), list(folds))
    rows: dict[str, list[dict]] = {"GMT": []}
    first = next(iter(by_model.values()))
    for fold in folds:  # GMT on exactly the rows the models are evaluated on
        rows["GMT"].append(gmt_metrics(pd.read_parquet(first[fold]), windows))
    for name, files in {**by_model, **{b.upper(): f for b, f in by_baseline.items()}}.items():
        rows[name] = [prediction_metrics(pd.read_parquet(files[fold]), windows) for fold in folds]
    table = table2(rows)
    write_table2(table, csv_path, md_path, tex_path)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
    return table


def run_dataset_prediction(model_path, skim_path, output) -> None:
    """A final model applied to every row of a skim (a dataset it was not trained on, e.g. MuOnia)."""
    skim = pd.read_parquet(skim_path)
    model = TrainedModel.load(model_path)
    _write_parquet(_with_predictions(skim, model.predict(skim)), output)
    print(f"{skim_path}: {len(skim)} muons predicted by {model_path}", flush=True)
