"""What defines a network and its training rule: one row of the paper's Table 1 plus the hidden-layer widths.

The allowed names of losses, optimisers, activations and regularisations live here, so the config, the network
(:mod:`l1refit.ml.network`) and the optimisers (:mod:`l1refit.ml.optimizers`) check them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

LOSSES = ("mse", "msle", "logcosh")
OPTIMIZERS = ("adam", "adadelta", "adagrad", "sgd")
HIDDEN_ACTIVATIONS = ("relu", "softmax")
OUTPUT_ACTIVATIONS = ("linear", "relu")
REGULARIZATIONS = ("l1", "l2")

KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the fuzz factor of losses and optimisers


def check_choice(key: str, value, allowed: tuple[str, ...]) -> None:
    """A ``ValueError`` naming ``key`` and the allowed values unless ``value`` is one of them."""
    if value not in allowed:
        raise ValueError(f"{key}: unknown value {value!r}; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class ModelSpec:
    """One row of Table 1 plus the hidden-layer widths: everything that defines a network and its training rule."""

    loss: str
    optimizer: str
    regularization: dict | None
    hidden_activation: str
    output_activation: str
    hidden: tuple[int, ...] = (32, 32, 32)

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("hidden_activation", self.hidden_activation, HIDDEN_ACTIVATIONS)
        check_choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        for key, value in (self.regularization or {}).items():
            check_choice("regularization", key, REGULARIZATIONS)
            if not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"regularization.{key}: must be a number >= 0, got {value!r}")
        if not self.hidden or any(int(width) < 1 for width in self.hidden):
            raise ValueError(f"hidden: need at least one layer of width >= 1, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(width) for width in self.hidden))

    @classmethod
    def from_config(cls, model_entry: dict, hidden: Iterable[int] = (32, 32, 32)) -> ModelSpec:
        """Build from a ``models:`` entry of the config and ``training.hidden``; unknown keys are errors."""
        fields = ("loss", "optimizer", "regularization", "hidden_activation", "output_activation")
        unknown = sorted(set(model_entry) - set(fields))
        if unknown:
            raise ValueError(f"model entry: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
        missing = [key for key in fields if key != "regularization" and key not in model_entry]
        if missing:
            raise ValueError(f"model entry: missing key(s) {', '.join(missing)}")
        regularization = model_entry.get("regularization")
        return cls(
            loss=model_entry["loss"],
            optimizer=model_entry["optimizer"],
            regularization=dict(regularization) if regularization else None,
            hidden_activation=model_entry["hidden_activation"],
            output_activation=model_entry["output_activation"],
            hidden=tuple(hidden),
        )

    def to_dict(self) -> dict:
        """Plain types only (lists, not tuples), so the spec can be stored in a ``weights_only`` checkpoint."""
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        return cls(**{**data, "hidden": tuple(data["hidden"])})
