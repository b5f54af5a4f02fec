"""Mass-dataset stage (workflow/rules/mass.smk): the network trained for the mass dataset's population, the
mass-resolution limit, and Table 2 measured on the mass dataset."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from l1refit.analysis.metrics import Windows, gmt_metrics, prediction_metrics
from l1refit.analysis.tables import table2 as table2_frame
from l1refit.analysis.tables import write_table2
from l1refit.formats.output import atomic_path
from l1refit.ml.baselines import bayes_corrections, event_index
from l1refit.stages.folds import with_predictions, write_predictions

log = logging.getLogger(__name__)
LIMIT = "limit"


def train_reweighted(*, skim: str, target: str, spec: dict, training: dict, reweight: dict, schedule: dict,
                     model: str, history: str, plot: str, weights: str) -> None:  # fmt: skip
    """Train one model on every training muon, weighted so the training population's offline (pT, |η|, charge)
    density is the ``target`` dataset's (l1refit.ml.reweight), for ``schedule`` epochs and patience; save it with
    its history, plot and a weight summary."""
    from l1refit.ml.reweight import Reweighting  # torch: only the reweighted training pays for it
    from l1refit.ml.training import train_and_save
    from l1refit.stages.train import spec_and_arguments

    train_df, target_df = pd.read_parquet(skim), pd.read_parquet(target)
    settings = Reweighting(**reweight)
    w, summary = settings.weights(train_df, target_df)
    label = f"model {spec.get('id', '?')}, reweighted to {Path(target).stem}"
    log.info("%s: %d training muons, effective fraction %.3f, target fraction unrepresented %.2g", label,
             len(train_df), summary["effective_fraction"], summary["target_unrepresented"])  # fmt: skip
    model_spec, arguments = spec_and_arguments(spec, training, -1)
    arguments |= {"epochs": schedule["epochs"], "patience": schedule["patience"]}
    train_and_save(
        train_df, model_spec, model_path=model, history_path=history, plot_path=plot, title=label, weights=w,
        metadata={"model": str(spec.get("id", "")), "fold": -1, "training": dict(training),
                  "reweighted_to": Path(target).stem, "reweight": dict(reweight) | dict(schedule)},
        **arguments,
    )  # fmt: skip
    with atomic_path(weights) as tmp:
        Path(tmp).write_text(json.dumps({"target": Path(target).stem, **dict(reweight), **summary}, indent=1) + "\n")


def mass_limit(*, skim: str, seed: int, predictions: str) -> None:
    """The cross-fitted per-cell RMS-optimal correction of every muon of a dataset with offline truth
    (l1refit.ml.baselines.bayes_corrections): the best any per-muon re-fit of the four inputs can do."""
    rows = pd.read_parquet(skim)
    with threadpool_limits(1):
        pred = bayes_corrections(rows, seed=seed)
    write_predictions(with_predictions(rows, pred), predictions)
    log.info("%s: %d muons corrected by the cross-fitted per-cell limit", skim, len(rows))


def _partitions(rows: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """A partition number 0 … n−1 per row, whole events together (drawn with ``seed``)."""
    n_events, index = event_index(rows)
    return (np.random.default_rng(seed).permutation(n_events) % n)[index]


def table2_mass(*, predictions: list[str], names: list[str], metrics: dict, partitions: int, seed: int, csv: str,
                md: str, tex: str) -> pd.DataFrame:  # fmt: skip
    """Table 2 on the mass dataset: GMT and every source of corrected values (``names``: one per predictions
    file of the same muons), mean ± std over ``partitions`` random parts of the events (whole events together),
    a spread like the folds' in the training dataset's Table 2."""
    if len(predictions) != len(names):
        raise ValueError(f"{len(predictions)} prediction files for {len(names)} names")
    windows = Windows.from_config(metrics)
    frames = [pd.read_parquet(path) for path in predictions]
    first = frames[0]
    for path, frame in zip(predictions, frames, strict=True):
        if len(frame) != len(first) or not np.array_equal(frame["l1_pt"].to_numpy(), first["l1_pt"].to_numpy()):
            raise ValueError(f"{path}: not the muons of {predictions[0]}")
    part = _partitions(first, partitions, seed)
    rows: dict[str, list[dict]] = {"GMT": [gmt_metrics(first[part == k], windows) for k in range(partitions)]}
    for name, frame in zip(names, frames, strict=True):
        rows[name] = [prediction_metrics(frame[part == k], windows) for k in range(partitions)]
    table = table2_frame(rows)
    write_table2(table, csv, md, tex)
    log.info("Table 2 on the mass dataset:\n%s", table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return table
