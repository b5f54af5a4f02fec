"""Fake identification of L1 muons: a small MLP that gives each selected L1 muon a probability of being fake.

A *candidate* is one selected L1 muon (one row) with its hardware values and its neighbour features (the nearest
other selected L1 muon of the same event and BX); ``is_fake`` says it has no offline counterpart. The fakes are
ghosts (a lower-quality copy beside a real muon: small ``near_dphi``, ``near_dqual`` > 0 on the ghost),
punch-through (quality 12–13, soft pT), out-of-time real muons (irreducible here) and uniform noise.

The network is Dense → ReLU per hidden layer, then one logit; the training minimises BCE-with-logits (optionally
with a class-balanced positive weight) with Adam on mini-batches and stops early on a seeded validation split,
keeping the best epoch, as :func:`l1refit.ml.training.train` does. The deployable module, :class:`FakeNet`, takes the
raw features as float32 and holds the standardisation (per-feature mean and standard deviation of the training rows,
as buffers) and the sigmoid, so its forward is the fake probability and it exports to ONNX as it is. Training is
bit-reproducible on CPU for a given seed (one intra-op thread, :func:`l1refit.ml.network.torch_settings`).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from l1refit.ml.checkpoint import save_checkpoint
from l1refit.ml.fakeid_columns import FAKE_FEATURES, LABEL
from l1refit.ml.network import EVAL_CHUNK, as_tensor, torch_settings
from l1refit.ml.optimizers import FlatAdam
from l1refit.ml.targets import features
from l1refit.ml.training import HISTORY_COLUMNS, _check_train_args

log = logging.getLogger(__name__)

FAKEID_CHECKPOINT_FORMAT = 1
FAKEID_KIND = "fakeid"  # distinguishes this checkpoint from the regression's (l1refit.ml.checkpoint)


# ---------------------------------------------------------------------------------------------------------------
# the network


class FakeNet(nn.Module):
    """Raw features (N, n_inputs) float32 → fake probability (N, 1): standardise, MLP, sigmoid.

    ``offset`` and ``scale`` (buffers, saved in the state dict) are the training rows' per-feature mean and standard
    deviation (a constant feature has scale 1). :meth:`logits` is the pre-sigmoid output the training uses.
    """

    def __init__(self, n_inputs: int, hidden: Sequence[int] = (32, 32)) -> None:
        super().__init__()
        hidden = tuple(int(units) for units in hidden)
        if n_inputs < 1 or any(units < 1 for units in hidden):
            raise ValueError(f"FakeNet: need n_inputs >= 1 and hidden widths >= 1, got {n_inputs}, {hidden}")
        self.hidden = hidden
        self.register_buffer("offset", torch.zeros(n_inputs))
        self.register_buffer("scale", torch.ones(n_inputs))
        layers: list[nn.Module] = []
        width = n_inputs
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def set_standardisation(self, offset: np.ndarray, scale: np.ndarray) -> None:
        self.offset.copy_(torch.as_tensor(offset, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp((x.to(torch.float32) - self.offset) / self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) standard deviation in float64; a constant column gets scale 1."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# the classifier


def _features(frame: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    x = features(frame, names)  # ValueError naming any missing column
    if not np.all(np.isfinite(x)):
        bad = [name for name, ok in zip(names, np.all(np.isfinite(x), axis=0), strict=True) if not ok]
        raise ValueError(f"feature column(s) {', '.join(bad)} contain NaN or infinity")
    return x


def labels(frame: pd.DataFrame) -> np.ndarray:
    """``is_fake`` as a bool array; ValueError when the column is missing or holds anything but booleans / 0 / 1."""
    if LABEL not in frame.columns:
        raise ValueError(f"label column {LABEL!r} not in the table")
    values = frame[LABEL]
    if values.isna().any():
        raise ValueError(f"label column {LABEL!r} contains missing values")
    values = values.to_numpy()
    if values.dtype != bool and not np.isin(values, (0, 1)).all():
        raise ValueError(f"label column {LABEL!r} must be boolean (or 0/1)")
    return values.astype(bool)


@dataclass
class FakeClassifier:
    """A trained :class:`FakeNet` with its input columns: the fake probability of every row of a candidates table.

    ``module`` is the deployable network (raw features in, probability out; see :class:`FakeNet`).
    """

    module: FakeNet
    features: tuple[str, ...] = FAKE_FEATURES
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = tuple(self.features)
        self.module.eval()

    def predict_proba(self, frame: pd.DataFrame, threads: int = 1) -> np.ndarray:
        """The fake probability of every row of ``frame``, shape (N,), float32 (``module``'s forward, in chunks)."""
        x = as_tensor(_features(frame, self.features))
        self.module.eval()
        with torch_settings(threads), torch.inference_mode():
            chunks = [self.module(x[start : start + EVAL_CHUNK]) for start in range(0, len(x), EVAL_CHUNK)]
        return torch.cat(chunks)[:, 0].numpy() if chunks else np.empty(0, dtype=np.float32)

    def to_checkpoint(self) -> dict:
        """Plain types and tensors only (the standardisation is in the state dict), for ``weights_only`` loading."""
        return {
            "format": FAKEID_CHECKPOINT_FORMAT,
            "kind": FAKEID_KIND,
            "state_dict": self.module.state_dict(),
            "hidden": list(self.module.hidden),
            "features": list(self.features),
            "metadata": dict(self.metadata),
        }

    def save(self, path: str | Path) -> None:
        """The checkpoint, written atomically and byte-reproducibly (:func:`l1refit.ml.checkpoint.save_checkpoint`)."""
        save_checkpoint(self.to_checkpoint(), path)

    @classmethod
    def load(cls, path: str | Path) -> FakeClassifier:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if checkpoint.get("kind") != FAKEID_KIND or checkpoint.get("format") != FAKEID_CHECKPOINT_FORMAT:
            raise ValueError(
                f"{path}: not a fake-ID checkpoint of format {FAKEID_CHECKPOINT_FORMAT} "
                f"(kind {checkpoint.get('kind')!r}, format {checkpoint.get('format')!r})"
            )
        names = tuple(checkpoint["features"])
        module = FakeNet(len(names), checkpoint["hidden"])
        module.load_state_dict(checkpoint["state_dict"])
        return cls(module=module, features=names, metadata=checkpoint["metadata"])


# ---------------------------------------------------------------------------------------------------------------
# training


def _epoch(module: FakeNet, optimizer, loss_fn, x: torch.Tensor, y: torch.Tensor, batch_size: int,
           rng: np.random.Generator) -> float:  # fmt: skip
    """One pass over the training rows in a seeded permutation; the row-weighted mean minibatch loss."""
    module.train()
    order = torch.from_numpy(rng.permutation(len(x)))
    x, y = x[order], y[order]
    total, seen = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(module.logits(xb), yb)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(xb)
        seen += len(xb)
    return total / seen


@torch.no_grad()
def _evaluate(module: FakeNet, loss_fn, x: torch.Tensor, y: torch.Tensor) -> float:
    module.eval()
    total = 0.0
    for start in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
        total += float(loss_fn(module.logits(xb), yb)) * len(xb)
    return total / len(x)


def train_classifier(
    frame: pd.DataFrame,
    *,
    hidden: Sequence[int] = (32, 32),
    epochs: int = 30,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    patience: int = 5,
    validation_fraction: float = 0.1,
    balanced: bool = False,
    seed: int = 0,
    progress: Callable[[str], object] = log.debug,
) -> tuple[FakeClassifier, pd.DataFrame]:
    """Train a :class:`FakeNet` on the candidates ``frame`` (columns :data:`FAKE_FEATURES` and ``is_fake``).

    The validation rows are the last ``validation_fraction`` of the rows after a permutation drawn from
    ``numpy.random.default_rng(seed)``; the standardisation is fitted on the other (training) rows only. Each epoch
    shuffles the training rows with the same numpy generator; the weights are initialised after
    ``torch.manual_seed(seed)`` (the global torch RNG state is restored afterwards) and everything runs on one
    intra-op thread, so the same seed gives bit-identical models on CPU. Loss: BCE with logits; ``balanced`` sets
    its positive (fake) weight to n_real / n_fake of the training rows, so both classes weigh the same (the
    probabilities are then no longer calibrated to the fake fraction, the ranking is what matters). Adam with
    ``learning_rate``; early stopping when the validation loss has not improved for ``patience`` epochs, and the
    model of the best epoch is returned. History: :data:`l1refit.ml.training.HISTORY_COLUMNS`.
    """
    x_all = _features(frame, FAKE_FEATURES)
    y_all = labels(frame)
    if len(y_all) == 0:
        raise ValueError("no candidates to train on")
    if y_all.all() or not y_all.any():
        raise ValueError(f"label column {LABEL!r} has a single class (all {bool(y_all[0])}): need fakes and reals")
    n_fit = _check_train_args(len(x_all), epochs, batch_size, patience, validation_fraction)
    if not 0 < learning_rate < math.inf:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_all))
    fit_rows, val_rows = order[:n_fit], order[n_fit:]
    n_fake = int(y_all[fit_rows].sum())
    if n_fake in (0, n_fit):
        raise ValueError(f"the training rows (without the validation split) have a single class of {LABEL!r}")
    offset, scale = standardisation(x_all[fit_rows])
    x_fit, x_val = as_tensor(x_all[fit_rows]), as_tensor(x_all[val_rows])
    y_fit, y_val = (as_tensor(y_all[rows, None]) for rows in (fit_rows, val_rows))
    pos_weight = torch.tensor([(n_fit - n_fake) / n_fake if balanced else 1.0])
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    rows, best = [], (math.inf, 0, None)  # (val_loss, epoch, state_dict)
    with torch_settings(1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = FakeNet(len(FAKE_FEATURES), hidden)
        module.set_standardisation(offset, scale)
        optimizer = FlatAdam(module.parameters(), lr=learning_rate)
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            loss = _epoch(module, optimizer, loss_fn, x_fit, y_fit, batch_size, rng)
            val_loss = _evaluate(module, loss_fn, x_val, y_val)
            seconds = time.perf_counter() - start
            rows.append((epoch, loss, val_loss, seconds))
            improved = val_loss < best[0]  # NaN never wins
            if improved:
                best = (val_loss, epoch, copy.deepcopy(module.state_dict()))
            progress(f"epoch {epoch}/{epochs}: loss {loss:.6e}, val_loss {val_loss:.6e}, {seconds:.2f} s"
                     + (" (best)" if improved else ""))  # fmt: skip
            if not improved and epoch - best[1] >= patience:
                break
    best_val, best_epoch, best_state = best
    if best_state is None:
        raise RuntimeError(f"training diverged: val_loss was not finite in any of {len(rows)} epochs")
    module.load_state_dict(best_state)
    metadata = {
        "seed": int(seed),
        "hidden": list(module.hidden),
        "epochs": int(epochs),
        "epochs_run": len(rows),
        "best_epoch": int(best_epoch),
        "best_val_loss": float(best_val),
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "patience": int(patience),
        "validation_fraction": float(validation_fraction),
        "balanced": bool(balanced),
        "pos_weight": float(pos_weight[0]),
        "n_train": int(n_fit),
        "n_validation": int(len(val_rows)),
        "fake_fraction_train": n_fake / n_fit,
        "torch_version": str(torch.__version__),
    }
    classifier = FakeClassifier(module, FAKE_FEATURES, metadata)
    return classifier, pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
