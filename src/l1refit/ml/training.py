"""Training of the paper's MLP on a skim: a Keras-like fit loop with early stopping, the loss history and its plot.

The loop follows ``keras.Model.fit`` where it matters (loss reporting, validation split, early stopping, shuffling)
and is bit-deterministic on CPU for a given seed and thread count; docs/training.md says where and why it differs.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from l1refit.formats.output import atomic_path
from l1refit.ml.checkpoint import TrainedModel
from l1refit.ml.network import (
    EVAL_CHUNK,
    as_tensor,
    build_mlp,
    make_loss,
    make_sample_loss,
    regularization_penalty,
    torch_settings,
)
from l1refit.ml.optimizers import make_optimizer
from l1refit.ml.scaling import MinMaxScaler
from l1refit.ml.spec import ModelSpec
from l1refit.ml.targets import DEFAULT_INPUTS, TARGET_NAMES, check_pt_target, features, targets

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "loss", "val_loss", "seconds")


def _check_train_args(n_rows: int, epochs: int, batch_size: int, patience: int, validation_fraction: float) -> int:
    """Validate the loop parameters; return the number of training rows (Keras: ``int(n · (1 − split))``)."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (BatchNorm needs two rows), got {batch_size}")
    if patience < 0:
        raise ValueError(f"patience must be >= 0, got {patience}")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    n_fit = int(n_rows * (1.0 - validation_fraction))
    if n_fit < 2 or n_rows - n_fit < 1:
        raise ValueError(f"{n_rows} rows are too few for validation_fraction {validation_fraction}")
    return n_fit


def _epoch(module, optimizer, loss_fn, reg, x: torch.Tensor, y: torch.Tensor, batch_size: int,
           generator: torch.Generator, w: torch.Tensor | None = None) -> float:  # fmt: skip
    """One pass over the training rows in a seeded permutation; the sample-weighted mean minibatch loss.

    With row weights ``w`` (``loss_fn`` then gives per-row losses) a batch's loss is Σ wᵢ·lossᵢ / batch size,
    Keras' ``sample_weight`` convention."""
    module.train()
    order = torch.randperm(len(x), generator=generator)
    x, y = x[order], y[order]  # one gather per epoch, then contiguous slices
    if w is not None:
        w = w[order]
    total, seen = torch.zeros((), dtype=torch.float64), 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        if len(xb) < 2:
            continue
        optimizer.zero_grad(set_to_none=True)
        if w is None:
            loss = loss_fn(module(xb), yb)
        else:
            loss = torch.mean(loss_fn(module(xb), yb) * w[start : start + batch_size])
        if reg:
            loss = loss + regularization_penalty(module, reg)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(xb)
        seen += len(xb)
    return float(total) / seen


@torch.no_grad()
def _evaluate(module, loss_fn, reg, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> float:
    """Keras' ``val_loss``: inference-mode loss over all rows (chunk means weighted by size) plus the regulariser;
    with row weights ``w``, the weighted mean Σ wᵢ·lossᵢ / N (early stopping then watches the target population)."""
    module.eval()
    total = 0.0
    for start in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
        if w is None:
            total += float(loss_fn(module(xb), yb)) * len(xb)
        else:
            total += float(torch.sum(loss_fn(module(xb), yb) * w[start : start + EVAL_CHUNK]))
    return total / len(x) + float(regularization_penalty(module, reg))


def train(
    df_train: pd.DataFrame,
    spec: ModelSpec,
    *,
    inputs: Sequence[str] = DEFAULT_INPUTS,
    epochs: int,
    batch_size: int,
    patience: int,
    validation_fraction: float,
    pt_target: str = "absolute",
    target_clip: float = 0.0,
    target_scale: float = 1.0,
    seed: int,
    threads: int = 1,
    weights: np.ndarray | None = None,
    progress: Callable[[str], object] = log.info,
) -> tuple[TrainedModel, pd.DataFrame]:
    """Fit ``spec`` to ``df_train`` (the training folds); return the model at its best epoch and the history.

    The validation rows are the last ``validation_fraction`` of ``df_train`` after a shuffle seeded by ``seed``;
    both scalers are fitted on the remaining rows only. History columns: ``epoch`` (1-based), ``loss``,
    ``val_loss`` (both with the regulariser, as Keras reports them) and ``seconds`` (wall time of the epoch);
    ``progress`` receives one line per epoch and one closing line. docs/training.md has the Keras choices.
    ``target_clip`` > 0 clips each target to its [q, 1 − q] quantiles of the training rows before the min-max
    scaling (robust scaling, beyond the paper, which used plain min-max: 0). ``target_scale`` is the upper end of
    the scaled target range (the paper: 1): log-cosh is quadratic for residuals below 1 and linear above, so on
    [0, 1] it is a mean-squared error whose minimiser, the conditional mean, is dragged by the soft-muon and
    decay-in-flight tails; on [0, 30] it turns linear beyond ~1/30 of a target's range and fits the core.
    ``weights`` (one per row of ``df_train``, e.g. :mod:`l1refit.ml.reweight`) weight the training and the
    validation loss; rows of weight 0 still shape the scalers. None: the paper's unweighted training.
    """
    check_pt_target(pt_target)
    inputs = tuple(inputs)
    x_all, y_all = features(df_train, inputs), targets(df_train, pt_target)
    if not (np.all(np.isfinite(x_all)) and np.all(np.isfinite(y_all))):
        raise ValueError("training data contain NaN or infinite inputs or targets")
    n_fit = _check_train_args(len(x_all), epochs, batch_size, patience, validation_fraction)
    order = np.random.default_rng(seed).permutation(len(x_all))
    fit_rows, val_rows = order[:n_fit], order[n_fit:]
    if target_clip > 0:  # robust min-max: a handful of outliers would otherwise squeeze the bulk of each target
        lo, hi = np.quantile(y_all[fit_rows], [target_clip, 1.0 - target_clip], axis=0)
        y_all = np.clip(y_all, lo, hi)
    x_scaler, y_scaler = MinMaxScaler().fit(x_all[fit_rows]), MinMaxScaler(high=target_scale).fit(y_all[fit_rows])
    x_fit, y_fit = as_tensor(x_scaler.transform(x_all[fit_rows])), as_tensor(y_scaler.transform(y_all[fit_rows]))
    x_val, y_val = as_tensor(x_scaler.transform(x_all[val_rows])), as_tensor(y_scaler.transform(y_all[val_rows]))
    w_fit = w_val = None
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(x_all),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"weights: need {len(x_all)} finite values >= 0, got shape {weights.shape}")
        w_fit, w_val = as_tensor(weights[fit_rows]), as_tensor(weights[val_rows])

    loss_fn = make_loss(spec.loss) if weights is None else make_sample_loss(spec.loss)
    reg = spec.regularization
    rows, best = [], (math.inf, 0, None)  # (val_loss, epoch, state_dict)
    with torch_settings(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_mlp(len(inputs), len(TARGET_NAMES), spec)
        optimizer = make_optimizer(spec.optimizer, module.parameters())
        generator = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            loss = _epoch(module, optimizer, loss_fn, reg, x_fit, y_fit, batch_size, generator, w_fit)
            val_loss = _evaluate(module, loss_fn, reg, x_val, y_val, w_val)
            seconds = time.perf_counter() - start
            rows.append((epoch, loss, val_loss, seconds))
            improved = val_loss < best[0]  # Keras: monitor_op(current - min_delta, best), min_delta 0; NaN never wins
            if improved:
                best = (val_loss, epoch, copy.deepcopy(module.state_dict()))
            progress(f"epoch {epoch}/{epochs}: loss {loss:.6e}, val_loss {val_loss:.6e}, {seconds:.2f} s"
                     + (" (best)" if improved else ""))  # fmt: skip
            if not improved and epoch - best[1] >= patience:  # Keras: wait >= patience, wait reset on improvement
                break
    best_val, best_epoch, best_state = best
    if best_state is None:
        raise RuntimeError(f"training diverged: val_loss was not finite in any of {len(rows)} epochs")
    module.load_state_dict(best_state)
    module.eval()
    progress(f"stopped after epoch {len(rows)}; restored best epoch {best_epoch} (val_loss {best_val:.6e})")
    metadata = {
        "seed": int(seed),
        "epochs": int(epochs),
        "epochs_run": len(rows),
        "best_epoch": int(best_epoch),
        "best_val_loss": float(best_val),
        "batch_size": int(batch_size),
        "patience": int(patience),
        "validation_fraction": float(validation_fraction),
        "target_clip": float(target_clip),
        "target_scale": float(target_scale),
        "n_train": int(n_fit),
        "n_validation": int(len(val_rows)),
        "threads": int(threads),
        "torch_version": str(torch.__version__),
    }
    if weights is not None:
        metadata["weighted"] = True
    model = TrainedModel(module, x_scaler, y_scaler, spec, inputs, pt_target, metadata)
    return model, pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))


# ---------------------------------------------------------------------------------------------------------------
# outputs


def plot_history(history: pd.DataFrame, path: str | Path, title: str) -> None:
    """Loss curves (training and validation, log y) with the best epoch marked, written atomically as an image.

    Uses the Agg canvas directly instead of pyplot, so no global backend state is touched.
    """
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(history["epoch"], history["loss"], marker="o", ms=3, label="training")
    ax.plot(history["epoch"], history["val_loss"], marker="s", ms=3, label="validation")
    if history["val_loss"].notna().any():
        best = history.loc[history["val_loss"].idxmin(), "epoch"]
        ax.axvline(best, color="grey", ls="--", lw=1, label=f"best epoch ({best})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (with regularisation)")
    ax.set_title(title)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)


def write_history(history: pd.DataFrame, path: str | Path) -> None:
    """``history.csv`` with the columns of :data:`HISTORY_COLUMNS`, written atomically."""
    with atomic_path(path) as tmp:
        history.to_csv(tmp, index=False, columns=list(HISTORY_COLUMNS))


def train_and_save(
    df_train: pd.DataFrame,
    spec: ModelSpec,
    *,
    model_path: str | Path,
    history_path: str | Path,
    plot_path: str | Path | None = None,
    title: str = "",
    metadata: dict | None = None,
    **train_kwargs,
) -> tuple[TrainedModel, pd.DataFrame]:
    """:func:`train`, then write the checkpoint, ``history.csv`` and (optionally) the loss-curve plot.

    ``metadata`` (plain types) is stored with the model beside the training metadata, e.g. the model id and fold.
    """
    model, history = train(df_train, spec, **train_kwargs)
    model.metadata.update(metadata or {})
    model.save(model_path)
    write_history(history, history_path)
    if plot_path is not None:
        plot_history(history, plot_path, title)
    return model, history
