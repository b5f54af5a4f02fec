"""What the per-fold stages share: the seed of a job, the rows of a fold, prediction files."""

from __future__ import annotations

import numpy as np
import pandas as pd

from l1refit.formats.output import atomic_path
from l1refit.ml.fakeid_columns import FAKE_FEATURES, FAKE_PROB
from l1refit.ml.folds import fold_split

PREDICTION_COLUMNS = ("pred_phi", "pred_eta", "pred_pt")
FINAL = "final"
MUON_KEYS = ("part", "entry", "run", "orbit", "bx", "l1_index")  # what names a muon in a skim and its candidates


def fold_number(split: str) -> int:
    """``fold3`` → 3; ``final`` (trained on all folds) → −1."""
    if split == FINAL:
        return -1
    if split.startswith("fold") and split[4:].isdigit():
        return int(split[4:])
    raise ValueError(f"split {split!r}: expected 'fold<k>' or {FINAL!r}")


def job_seed(training: dict, fold: int) -> int:
    """The seed of one job of fold ``fold`` (−1: the final training): ``seed * 1000 + fold + 1``.

    Every fold has its own reproducible stream, and every model of Table 1 starts from the same one per fold.
    """
    return int(training["seed"]) * 1000 + fold + 1


def split_rows(skim: pd.DataFrame, training: dict, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, held-out rows) of ``fold``; for −1 every row trains and none is held out."""
    if fold < 0:
        return skim, skim.iloc[:0]
    return fold_split(skim, fold, training["folds"], training["seed"])


def with_predictions(rows: pd.DataFrame, pred) -> pd.DataFrame:
    """``rows`` with the prediction columns beside them (by position: ``pred`` may be a dict or a frame)."""
    out = rows.reset_index(drop=True).copy()
    for column in PREDICTION_COLUMNS:
        out[column] = np.asarray(pred[column])
    return out


def with_fake_prob(frame: pd.DataFrame, candidates: str | None, classifier: str | None) -> pd.DataFrame:
    """``frame`` (skim rows) with :data:`FAKE_PROB` from ``classifier`` (a fake-ID model file), its neighbour features
    taken from the muon's row of the dataset's ``candidates`` table; unchanged when either is None (fake
    identification off). A row missing from the candidate table is an error naming both files."""
    if candidates is None or classifier is None:
        return frame
    keys = [key for key in MUON_KEYS if key in frame.columns]
    table = pd.read_parquet(candidates, columns=list(dict.fromkeys([*keys, *FAKE_FEATURES])))
    joined = frame[keys].merge(table, on=keys, how="left", validate="many_to_one")
    if joined[list(FAKE_FEATURES)].isna().to_numpy().any():
        raise ValueError(f"{candidates}: some muons of the predictions are not in the candidate table (keys {keys}), "
                         f"so {classifier} cannot give them a fake probability")  # fmt: skip
    from l1refit.ml.fakeid import FakeClassifier  # torch: only the jobs that score muons pay for it

    return frame.assign(**{FAKE_PROB: FakeClassifier.load(classifier).predict_proba(joined)})


def write_predictions(frame: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
