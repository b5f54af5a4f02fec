"""A trained model as one object: the network between its scalers, applied to a skim, saved and loaded.

The checkpoint holds plain types and tensors only, so ``torch.load(..., weights_only=True)`` reads it back.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from l1refit.formats.output import atomic_path
from l1refit.ml.network import EVAL_CHUNK, as_tensor, build_mlp, torch_settings
from l1refit.ml.scaling import MinMaxScaler
from l1refit.ml.spec import ModelSpec
from l1refit.ml.targets import DEFAULT_INPUTS, OFFSET_KEYS, TARGET_NAMES, check_pt_target, corrected, features

CHECKPOINT_FORMAT = 1


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
        check_pt_target(self.pt_target)
        self.inputs = tuple(self.inputs)
        self.module.eval()

    def predict_targets(self, df: pd.DataFrame, threads: int = 1) -> np.ndarray:
        """Predicted offsets (N, 3) in physical target units (see :func:`l1refit.ml.targets.targets`), float64."""
        x = as_tensor(self.x_scaler.transform(features(df, self.inputs)))
        self.module.eval()
        with torch_settings(threads), torch.inference_mode():
            chunks = [self.module(x[start : start + EVAL_CHUNK]) for start in range(0, len(x), EVAL_CHUNK)]
        out = torch.cat(chunks).numpy() if chunks else np.empty((0, 3), dtype=np.float32)
        return self.y_scaler.inverse_transform(out)

    def predict(self, df: pd.DataFrame, threads: int = 1) -> dict[str, np.ndarray]:
        """Corrected physical ``pred_phi`` (wrapped), ``pred_eta``, ``pred_pt`` (GeV) for every row of ``df``."""
        pred = self.predict_targets(df, threads)
        return corrected(df, dict(zip(OFFSET_KEYS, pred.T, strict=True)), self.pt_target)

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
        save_checkpoint(self.to_checkpoint(), path)

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


def save_checkpoint(checkpoint: dict, path: str | Path) -> None:
    """``torch.save`` of ``checkpoint`` to ``path``, atomically and byte-reproducibly: serialised in memory first,
    because torch names the zip archive's records after the file it writes, and the temporary file's name holds the
    process id, so saving to it directly would give other bytes on every run (and a forced rerun would leave every
    job downstream out of date)."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buffer.getvalue())
