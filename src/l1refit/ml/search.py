"""The paper's hyperparameter search (§3.3) as models of the fan-out: the ``search:`` config expanded into ``models:``
entries, one per point, each trained per fold like a Table-1 model (docs/training.md §8).

Strategies: ``grid`` (every combination of the handles' values) and ``one_at_a_time`` (the ``base`` model, then each
handle's other values with every other handle at the base: the paper's incremental search, one round; its adaptive
step, "keep the best value and search the next handle", is the user's: set ``base`` to the winner and run again,
and every point already trained keeps its id and its outputs). Ids are made from the settings, so they are stable
across rounds and across grids: ``S_<loss>_<optimizer>_<regularisation>_<hidden>_<output>``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from l1refit.ml.spec import ModelSpec

HANDLES = ("loss", "optimizer", "regularization", "hidden_activation", "output_activation")
# Job seconds of one point and fold (its training and its out-of-fold predictions), measured: config/search.yaml on
# the default data, 2 cores, 100 jobs in 2210 job-s (docs/training.md §8). The dry run's estimate.
SECONDS_PER_FOLD_JOB = 45.0
STRATEGIES = ("grid", "one_at_a_time")
PREFIX = "S_"


def _regularization_code(regularization: Mapping | None) -> str:
    """``noreg``, or e.g. ``l2_1em07`` for {l2: 1e-7} (model ids allow letters, digits and ``_`` only)."""
    if not regularization:
        return "noreg"
    parts = []
    for key, value in sorted(regularization.items()):
        text = f"{float(value):g}" if value else "0"
        parts.append(f"{key}_{text.replace('-', 'm').replace('+', 'p').replace('.', 'd')}")
    return "_".join(parts)


def point_id(entry: Mapping) -> str:
    """The model id of one search point (its settings, readable and stable)."""
    return PREFIX + "_".join(
        [entry["loss"], entry["optimizer"], _regularization_code(entry.get("regularization")),
         entry["hidden_activation"], entry["output_activation"]]
    )  # fmt: skip


def _points(search: Mapping) -> list[dict]:
    base = {key: search["base"].get(key) for key in HANDLES}
    handles = {key: list(values) for key, values in (search.get("handles") or {}).items()}
    unknown = sorted(set(handles) - set(HANDLES))
    if unknown:
        raise ValueError(f"search.handles: unknown handle(s) {', '.join(unknown)}; allowed: {', '.join(HANDLES)}")
    empty = [key for key, values in handles.items() if not values]
    if empty:
        raise ValueError(f"search.handles: no values for {', '.join(empty)}")
    strategy = search.get("strategy", "one_at_a_time")
    if strategy == "grid":
        keys = list(handles)
        return [base | dict(zip(keys, values, strict=True)) for values in itertools.product(*handles.values())]
    if strategy == "one_at_a_time":
        points = [base]
        for key, values in handles.items():
            points += [base | {key: value} for value in values if value != base[key]]
        return points
    raise ValueError(f"search.strategy: unknown value {strategy!r}; allowed: {', '.join(STRATEGIES)}")


def search_points(search: Mapping | None, models: Mapping[str, Mapping] | None = None) -> dict[str, dict]:
    """Every point of the search: model id → ``models:`` entry, in search order (empty without a search).

    A point with the settings of a configured model (``models``) is that model: its id is the configured one. Every
    point is checked as a :class:`~l1refit.ml.spec.ModelSpec`; ``search.epochs`` caps each new point's training.
    """
    if not search:
        return {}
    if "base" not in search:
        raise ValueError("search: needs a base model (search.base) that the handles vary")
    configured = {_key(entry): name for name, entry in (models or {}).items()}
    out: dict[str, dict] = {}
    for point in _points(search):
        ModelSpec.from_config(point)  # a clear error for a bad value, before any job is planned
        name = configured.get(_key(point))
        if name is not None:
            out.setdefault(name, dict(models[name]))
            continue
        entry = {key: value for key, value in point.items() if value is not None or key != "regularization"}
        if search.get("epochs"):
            entry["epochs"] = int(search["epochs"])
        out.setdefault(point_id(point), entry)
    return out


def search_models(search: Mapping | None, models: Mapping[str, Mapping] | None = None) -> dict[str, dict]:
    """The ``models:`` entries a search adds: its points that are not configured models."""
    return {name: entry for name, entry in search_points(search, models).items() if name not in (models or {})}


def _key(entry: Mapping) -> tuple:
    regularization = entry.get("regularization") or {}
    return tuple(entry.get(key) for key in HANDLES if key != "regularization") + (
        tuple(sorted((k, float(v)) for k, v in regularization.items())),
    )


def settings(entry: Mapping) -> dict[str, str]:
    """One point's handle values as text (the columns of ``search.csv``)."""
    return {key: (_regularization_code(entry.get(key)) if key == "regularization" else str(entry[key]))
            for key in HANDLES}  # fmt: skip


def cost(search: Mapping | None, models: Mapping[str, Mapping] | None, folds: int) -> str:
    """One line for the dry run: points, new models, jobs and the CPU-hours they take at
    :data:`SECONDS_PER_FOLD_JOB` (epoch caps scale it)."""
    points = search_points(search, models)
    new = {name: entry for name, entry in points.items() if name not in (models or {})}
    epochs = [min(entry.get("epochs", 40), 40) / 40 for entry in new.values()]
    hours = sum(epochs) * folds * SECONDS_PER_FOLD_JOB / 3600
    return (f"search ({(search or {}).get('strategy', 'one_at_a_time')}): {len(points)} points, {len(new)} new "
            f"models x {folds} folds = {2 * len(new) * folds} jobs (training and out-of-fold predictions), about "
            f"{hours:.1f} CPU-hours at {SECONDS_PER_FOLD_JOB:g} s per model and fold")  # fmt: skip
