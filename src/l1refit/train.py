"""Training of the paper's MLP on a skim: targets, Keras-like fit loop with early stopping, saving and loading.

The network learns the L1 − offline differences of φ, η and pT from the L1 hardware integers (§3.1), both scaled
to [0, 1] with scalers fitted on the training rows only; predictions are turned back into corrected physical φ, η, pT.

The fit loop follows ``keras.Model.fit`` where it matters and says where it does not:

* the epoch's training ``loss`` is the sample-weighted mean of the minibatch losses seen during the epoch (BatchNorm
  in training mode, weights moving), regularisation included, as Keras reports it;
* ``val_loss`` is the loss on the validation rows in inference mode at the end of the epoch, regularisation
  included — exactly Keras' ``val_loss`` (Keras' total loss carries the regulariser); early stopping monitors it;
* early stopping as Keras' ``EarlyStopping(monitor="val_loss", min_delta=0, patience=patience)``: stop once
  ``patience`` epochs in a row did not improve on the best; unlike Keras' default we always restore the best
  epoch's weights (also when ``epochs`` runs out), so results do not depend on where within the patience window
  training happened to stop;
* the validation split is the *last* ``validation_fraction`` of the rows, as Keras' ``validation_split`` takes it,
  but after one seeded shuffle: the skim is sorted by file and event, and Keras' unshuffled tail would be one file;
* each epoch visits the training rows in a fresh seeded permutation (Keras ``shuffle=True``) in minibatches by
  slicing, the last one partial, as Keras does; a last minibatch of a single row is skipped, because BatchNorm in
  training mode cannot normalise one row.

Bit-determinism on CPU for a given seed and thread count: float32 throughout, ``torch.manual_seed`` (inside a forked
RNG, so callers' global RNG state is untouched), a private ``torch.Generator`` for the permutations, NumPy's seeded
generator for the split, ``torch.use_deterministic_algorithms(True)`` and a fixed thread count during the call.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .io import atomic_path
from .model import MinMaxScaler, ModelSpec, build_mlp, make_loss, make_optimizer, regularization_penalty
from .scales import wrap_phi

DEFAULT_INPUTS = ("hwPhiAtVtx", "hwEtaAtVtx", "hwPt", "charge")  # the paper's order: φ, η, pT, charge sign
PT_TARGETS = ("absolute", "relative")
TARGET_NAMES = ("dphi", "deta", "dpt")
HISTORY_COLUMNS = ("epoch", "loss", "val_loss", "seconds")
EVAL_CHUNK = 65536  # rows per inference call: large enough to amortise Python overhead, small enough to stay in cache
CHECKPOINT_FORMAT = 1
PRINT_FLUSHED = functools.partial(print, flush=True)  # per-epoch lines reach a redirected rule log as they happen


# ---------------------------------------------------------------------------------------------------------------
# targets


def _check_pt_target(pt_target: str) -> None:
    if pt_target not in PT_TARGETS:
        raise ValueError(f"pt_target: unknown value {pt_target!r}; allowed: {', '.join(PT_TARGETS)}")


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    return df[name].to_numpy(dtype=np.float64)


def targets(df: pd.DataFrame, pt_target: str = "absolute") -> np.ndarray:
    """Regression targets (N, 3): the L1 − offline differences the network learns (§3.1), in float64.

    Columns: Δφ = l1_phi − reco_phi wrapped into (−π, π] (rad); Δη = l1_eta − reco_eta; and ΔpT by ``pt_target``:

    * ``"absolute"`` (default, the paper's literal "difference"): l1_pt − reco_pt in GeV;
    * ``"relative"``: (l1_pt − reco_pt) / l1_pt, dimensionless. The denominator is the *L1* pT, known at inference
      time, so the correction inverts exactly: pT = l1_pt · (1 − ΔpT). Needs l1_pt > 0 (true for valid muons).
    """
    _check_pt_target(pt_target)
    l1_pt = _column(df, "l1_pt")
    dpt = l1_pt - _column(df, "reco_pt")
    if pt_target == "relative":
        if np.any(l1_pt <= 0):
            raise ValueError("pt_target='relative' needs l1_pt > 0 for every row")
        dpt = dpt / l1_pt
    dphi = wrap_phi(_column(df, "l1_phi") - _column(df, "reco_phi"))
    deta = _column(df, "l1_eta") - _column(df, "reco_eta")
    return np.column_stack([dphi, deta, dpt])


def corrected(df: pd.DataFrame, pred, pt_target: str = "absolute") -> dict[str, np.ndarray]:
    """Corrected physical values from predicted differences ``pred`` (N, 3) in the units of :func:`targets`.

    φ = wrap(l1_phi − Δφ̂) into (−π, π]; η = l1_eta − Δη̂; pT = l1_pt − ΔpT̂ ("absolute") or l1_pt·(1 − ΔpT̂)
    ("relative"). With ``pred = targets(df)`` this gives back the offline values (up to rounding).
    """
    _check_pt_target(pt_target)
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 2 or pred.shape != (len(df), 3):
        raise ValueError(f"pred must have shape ({len(df)}, 3), got {pred.shape}")
    l1_pt = _column(df, "l1_pt")
    pt = l1_pt - pred[:, 2] if pt_target == "absolute" else l1_pt * (1.0 - pred[:, 2])
    return {
        "pred_phi": wrap_phi(_column(df, "l1_phi") - pred[:, 0]),
        "pred_eta": _column(df, "l1_eta") - pred[:, 1],
        "pred_pt": pt,
    }


def _features(df: pd.DataFrame, inputs: Sequence[str]) -> np.ndarray:
    missing = [name for name in inputs if name not in df.columns]
    if missing:
        raise ValueError(f"inputs: column(s) {', '.join(missing)} not in the table")
    return np.column_stack([_column(df, name) for name in inputs])


# ---------------------------------------------------------------------------------------------------------------
# torch settings


@contextlib.contextmanager
def torch_settings(threads: int) -> Iterator[None]:
    """Deterministic algorithms and ``threads`` intra-op threads for the block; the previous settings come back.

    The thread count is part of the determinism contract: a float32 reduction split over another number of threads
    may round differently.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    old_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_deterministic, warn_only=old_warn_only)


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


# ---------------------------------------------------------------------------------------------------------------
# the trained model


@dataclass
class TrainedModel:
    """A trained network with everything needed to apply it to a skim: scalers, spec, input columns, pT convention."""

    module: torch.nn.Module
    x_scaler: MinMaxScaler
    y_scaler: MinMaxScaler
    spec: ModelSpec
    inputs: tuple[str, ...] = DEFAULT_INPUTS
    pt_target: str = "absolute"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_pt_target(self.pt_target)
        self.inputs = tuple(self.inputs)
        self.module.eval()

    def predict_targets(self, df: pd.DataFrame, threads: int = 1) -> np.ndarray:
        """Predicted differences (N, 3) in physical target units (see :func:`targets`), float64."""
        x = _as_tensor(self.x_scaler.transform(_features(df, self.inputs)))
        self.module.eval()
        with torch_settings(threads), torch.inference_mode():
            chunks = [self.module(x[start : start + EVAL_CHUNK]) for start in range(0, len(x), EVAL_CHUNK)]
        out = torch.cat(chunks).numpy() if chunks else np.empty((0, 3), dtype=np.float32)
        return self.y_scaler.inverse_transform(out)

    def predict(self, df: pd.DataFrame, threads: int = 1) -> dict[str, np.ndarray]:
        """Corrected physical ``pred_phi`` (wrapped), ``pred_eta``, ``pred_pt`` (GeV) for every row of ``df``."""
        return corrected(df, self.predict_targets(df, threads), self.pt_target)

    def to_checkpoint(self) -> dict:
        """Plain types and tensors only, so that ``torch.load(..., weights_only=True)`` reads it back."""
        return {
            "format": CHECKPOINT_FORMAT,
            "state_dict": self.module.state_dict(),
            "x_scaler": self.x_scaler.to_dict(),
            "y_scaler": self.y_scaler.to_dict(),
            "spec": self.spec.to_dict(),
            "inputs": list(self.inputs),
            "pt_target": self.pt_target,
            "metadata": dict(self.metadata),
        }

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.to_checkpoint(), tmp)

    @classmethod
    def load(cls, path: str | Path) -> TrainedModel:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: checkpoint format {checkpoint.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        spec = ModelSpec.from_dict(checkpoint["spec"])
        inputs = tuple(checkpoint["inputs"])
        module = build_mlp(len(inputs), len(TARGET_NAMES), spec)
        module.load_state_dict(checkpoint["state_dict"])
        return cls(
            module=module,
            x_scaler=MinMaxScaler.from_dict(checkpoint["x_scaler"]),
            y_scaler=MinMaxScaler.from_dict(checkpoint["y_scaler"]),
            spec=spec,
            inputs=inputs,
            pt_target=checkpoint["pt_target"],
            metadata=checkpoint["metadata"],
        )


# ---------------------------------------------------------------------------------------------------------------
# training


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
           generator: torch.Generator) -> float:  # fmt: skip
    """One pass over the training rows in a seeded permutation; the sample-weighted mean minibatch loss."""
    module.train()
    order = torch.randperm(len(x), generator=generator)
    x, y = x[order], y[order]  # one gather per epoch, then contiguous slices
    total, seen = torch.zeros((), dtype=torch.float64), 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        if len(xb) < 2:
            continue
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(module(xb), yb)
        if reg:
            loss = loss + regularization_penalty(module, reg)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(xb)
        seen += len(xb)
    return float(total) / seen


@torch.no_grad()
def _evaluate(module, loss_fn, reg, x: torch.Tensor, y: torch.Tensor) -> float:
    """Keras' ``val_loss``: inference-mode loss over all rows (chunk means weighted by size) plus the regulariser."""
    module.eval()
    total = 0.0
    for start in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
        total += float(loss_fn(module(xb), yb)) * len(xb)
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
    progress: Callable[[str], object] = PRINT_FLUSHED,
) -> tuple[TrainedModel, pd.DataFrame]:
    """Fit ``spec`` to ``df_train`` (the training folds); return the model at its best epoch and the history.

    The validation rows are the last ``validation_fraction`` of ``df_train`` after a shuffle seeded by ``seed``;
    both scalers are fitted on the remaining rows only. History columns: ``epoch`` (1-based), ``loss``,
    ``val_loss`` (both with the regulariser, as Keras reports them) and ``seconds`` (wall time of the epoch);
    ``progress`` receives one line per epoch and one closing line. See the module docstring for the Keras choices.
    ``target_clip`` > 0 clips each target to its [q, 1 − q] quantiles of the training rows before the min-max
    scaling (robust scaling, beyond the paper, which used plain min-max: 0). ``target_scale`` is the upper end of
    the scaled target range (the paper: 1): log-cosh is quadratic for residuals below 1 and linear above, so on
    [0, 1] it is a mean-squared error whose minimiser, the conditional mean, is dragged by the soft-muon and
    decay-in-flight tails; on [0, 30] it turns linear beyond ~1/30 of a target's range and fits the core.
    """
    _check_pt_target(pt_target)
    inputs = tuple(inputs)
    x_all, y_all = _features(df_train, inputs), targets(df_train, pt_target)
    if not (np.all(np.isfinite(x_all)) and np.all(np.isfinite(y_all))):
        raise ValueError("training data contain NaN or infinite inputs or targets")
    n_fit = _check_train_args(len(x_all), epochs, batch_size, patience, validation_fraction)
    order = np.random.default_rng(seed).permutation(len(x_all))
    fit_rows, val_rows = order[:n_fit], order[n_fit:]
    if target_clip > 0:  # robust min-max: a handful of outliers would otherwise squeeze the bulk of each target
        lo, hi = np.quantile(y_all[fit_rows], [target_clip, 1.0 - target_clip], axis=0)
        y_all = np.clip(y_all, lo, hi)
    x_scaler, y_scaler = MinMaxScaler().fit(x_all[fit_rows]), MinMaxScaler(high=target_scale).fit(y_all[fit_rows])
    x_fit, y_fit = _as_tensor(x_scaler.transform(x_all[fit_rows])), _as_tensor(y_scaler.transform(y_all[fit_rows]))
    x_val, y_val = _as_tensor(x_scaler.transform(x_all[val_rows])), _as_tensor(y_scaler.transform(y_all[val_rows]))

    loss_fn, reg = make_loss(spec.loss), spec.regularization
    rows, best = [], (math.inf, 0, None)  # (val_loss, epoch, state_dict)
    with torch_settings(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_mlp(len(inputs), len(TARGET_NAMES), spec)
        optimizer = make_optimizer(spec.optimizer, module.parameters())
        generator = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            loss = _epoch(module, optimizer, loss_fn, reg, x_fit, y_fit, batch_size, generator)
            val_loss = _evaluate(module, loss_fn, reg, x_val, y_val)
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
