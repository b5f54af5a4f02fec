"""Training stage (workflow/rules/train.smk): one model trained per fold (or on all), out-of-fold predictions."""

from __future__ import annotations

import logging

import pandas as pd

from l1refit.ml.checkpoint import TrainedModel
from l1refit.ml.spec import ModelSpec
from l1refit.ml.training import train_and_save
from l1refit.stages.folds import (
    fold_number,
    job_seed,
    split_rows,
    with_fake_prob,
    with_predictions,
    write_predictions,
)

log = logging.getLogger(__name__)


def spec_and_arguments(spec: dict, training: dict, fold: int) -> tuple[ModelSpec, dict]:
    """The ``ModelSpec`` of a ``models:`` entry (with its ``id``; its ``epochs`` caps training.epochs) and the
    keyword arguments of :func:`l1refit.ml.training.train` the config sets for a job of ``fold``."""
    entry = {k: v for k, v in spec.items() if k not in ("id", "epochs")}
    arguments = {
        "inputs": tuple(training["inputs"]),
        "epochs": spec.get("epochs", training["epochs"]),
        "batch_size": training["batch_size"],
        "patience": training["patience"],
        "validation_fraction": training["validation_fraction"],
        "pt_target": training["pt_target"],
        "target_clip": training["target_clip"],
        "target_scale": training["target_scale"],
        "seed": job_seed(training, fold),
        "threads": 1,
    }
    return ModelSpec.from_config(entry, hidden=tuple(training["hidden"])), arguments


def train(*, skim: str, spec: dict, training: dict, split: str, model: str, history: str, plot: str) -> None:
    """Train one Table-1 model on every fold but ``split`` (``final``: on all folds); save model, history, plot."""
    fold = fold_number(split)
    train_df, _ = split_rows(pd.read_parquet(skim), training, fold)
    model_spec, arguments = spec_and_arguments(spec, training, fold)
    label = f"model {spec.get('id', '?')}, " + (f"fold {fold}" if fold >= 0 else "all folds")
    log.info("training %s on %d muons: %s", label, len(train_df), model_spec)
    train_and_save(
        train_df,
        model_spec,
        model_path=model,
        history_path=history,
        plot_path=plot,
        title=label,
        metadata={"model": str(spec.get("id", "")), "fold": int(fold), "training": dict(training)},
        **arguments,
    )


def predict(*, model: str, skim: str, training: dict, fold: int, predictions: str, candidates: str | None = None,
            classifier: str | None = None) -> None:  # fmt: skip
    """Out-of-fold predictions: the skim rows of ``fold`` with the model's corrected φ, η, pT beside them (and the
    fake probability from the same fold's classifier, fake identification on)."""
    _, test_df = split_rows(pd.read_parquet(skim), training, fold)
    out = with_predictions(test_df, TrainedModel.load(model).predict(test_df))
    out = with_fake_prob(out, candidates, classifier)
    write_predictions(out, predictions)
    log.info("fold %d: %d muons predicted", fold, len(out))
