"""Resolve the ``datasets:`` section of the config into concrete input files, failing early and clearly.

Called when the Snakefile is parsed, so a missing file or a glob that matches nothing stops the run before any
job starts, with the dataset, the pattern and the working directory in the message.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from l1refit.errors import ConfigError
from l1refit.formats.registry import OFFLINE_FORMATS, is_remote


def resolve_paths(name: str, patterns: list[str], base_dir: str | os.PathLike = ".") -> list[str]:
    """Expand globs of one dataset into a sorted, de-duplicated list of files; remote URLs pass through.

    Raises ``ConfigError`` for a plain path that does not exist, a glob that matches nothing, or an empty list.
    """
    if not patterns:
        raise ConfigError(f"dataset {name!r}: 'paths' is empty")
    base = Path(base_dir)
    files: list[str] = []
    for pattern in patterns:
        if is_remote(pattern):
            files.append(pattern)
            continue
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        if glob.has_magic(pattern):
            matches = sorted(p for p in glob.glob(full, recursive=True) if os.path.isfile(p))
            if not matches:
                raise ConfigError(
                    f"dataset {name!r}: glob {pattern!r} matches no file (searched from {base.resolve()})"
                )
            files.extend(os.path.relpath(m, base) if not os.path.isabs(pattern) else m for m in matches)
        elif os.path.isfile(full):
            files.append(pattern)
        else:
            raise ConfigError(f"dataset {name!r}: input file {pattern!r} not found (searched from {base.resolve()})")
    return list(dict.fromkeys(files))


SYNTHETIC_ONLY_KEYS = ("population", "files", "events_per_file", "seed")
FILE_ONLY_KEYS = ("paths", "l1_tree")
SYNTHETIC_FORMATS = ("l1ntuple", "nanoaod")  # the layouts the synthetic detector writes


def check_datasets(datasets: dict) -> None:
    """Reject keys that belong to the other kind of source (the schema checks types, this checks meaning)."""
    for name, spec in datasets.items():
        source = spec["source"]
        foreign = FILE_ONLY_KEYS if source == "synthetic" else SYNTHETIC_ONLY_KEYS
        for key in foreign:
            if key in spec:
                other = "files" if source == "synthetic" else "synthetic"
                raise ConfigError(
                    f"datasets.{name}.{key}: only applies to 'source: {other}', but this dataset has 'source: {source}'"
                )
        if source == "synthetic" and spec.get("format", "l1ntuple") not in SYNTHETIC_FORMATS:
            raise ConfigError(
                f"datasets.{name}.format: the synthetic detector writes {' or '.join(SYNTHETIC_FORMATS)}, "
                f"not {spec['format']!r}"
            )
        if spec.get("l1_tree") is not None and spec.get("format") != "l1ntuple":
            raise ConfigError(f"datasets.{name}.l1_tree: only applies to 'format: l1ntuple'")


def dataset_format(spec: dict) -> str:
    """The format of a dataset's files: configured, or l1ntuple for a synthetic dataset that does not say."""
    return spec.get("format", "l1ntuple")


def check_training_dataset(datasets: dict, name: str) -> None:
    """The training dataset must have offline muons: L1-only formats (scouting) can only be refitted."""
    fmt = dataset_format(datasets[name])
    if fmt not in OFFLINE_FORMATS:
        raise ConfigError(
            f"training.dataset {name!r} has format {fmt}, which holds L1 muons only (no offline muons to learn "
            f"from); train on a dataset of format {' or '.join(OFFLINE_FORMATS)} and apply the model to this one"
        )


def file_datasets(datasets: dict) -> dict[str, dict]:
    """The datasets read from user files (``source: files``), by name."""
    return {name: spec for name, spec in datasets.items() if spec["source"] == "files"}


def synthetic_datasets(datasets: dict) -> dict[str, dict]:
    """The datasets made by the synthetic detector (``source: synthetic``), by name."""
    return {name: spec for name, spec in datasets.items() if spec["source"] == "synthetic"}
