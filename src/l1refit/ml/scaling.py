"""Min-max scaling of the network's inputs and targets (paper §3.1), fitted on the training rows only, in float64."""

from __future__ import annotations

import numpy as np


class MinMaxScaler:
    """Column-wise min-max scaling to [0, ``high``] (§3.1: inputs and targets to [0, 1]), fitted on training data only.

    ``high`` > 1 is for targets: with the log-cosh loss, which is quadratic for |Δ| < 1 and linear beyond, a [0, 1]
    scaling makes every residual "small" and the loss a mean-squared error; a larger range makes it robust.
    Like scikit-learn's ``MinMaxScaler``, a constant column has scale 1 (it maps to 0 instead of dividing by zero).
    Data outside the fitted range (validation, test) map outside [0, high]; nothing is clipped. Arithmetic in float64.
    """

    def __init__(
        self, data_min: np.ndarray | None = None, data_max: np.ndarray | None = None, high: float = 1.0
    ) -> None:
        if not high > 0:
            raise ValueError(f"MinMaxScaler: high must be > 0, got {high}")
        self.data_min = None if data_min is None else np.asarray(data_min, dtype=np.float64)
        self.data_max = None if data_max is None else np.asarray(data_max, dtype=np.float64)
        self.high = float(high)

    def fit(self, x) -> MinMaxScaler:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"MinMaxScaler.fit needs a non-empty 2-D array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("MinMaxScaler.fit: data contain NaN or infinity")
        self.data_min, self.data_max = x.min(axis=0), x.max(axis=0)
        return self

    @property
    def scale(self) -> np.ndarray:
        """Data units per scaled unit."""
        if self.data_min is None:
            raise RuntimeError("MinMaxScaler is not fitted")
        span = self.data_max - self.data_min
        return np.where(span > 0, span, 1.0) / self.high

    def transform(self, x) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.data_min) / self.scale

    def inverse_transform(self, x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) * self.scale + self.data_min

    def to_dict(self) -> dict:
        return {"min": self.data_min.tolist(), "max": self.data_max.tolist(), "high": self.high}

    @classmethod
    def from_dict(cls, data: dict) -> MinMaxScaler:
        return cls(np.asarray(data["min"]), np.asarray(data["max"]), data.get("high", 1.0))
