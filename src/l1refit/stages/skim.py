"""Skim stage (workflow/rules/skim.smk): select and match one input file; merge a dataset's parts."""

from __future__ import annotations

from l1refit.skim.files import merge_skims as merge_parts
from l1refit.skim.files import skim_file


def skim(
    *,
    source: str,
    format: str,
    l1_tree: str,
    part: int,
    selection: dict,
    step_size: int,
    chunk_bytes: int,
    parquet: str,
    cutflow: str,
) -> None:
    """Barrel L1 muons of one file matched one-to-one to offline muons at station 2 (scouting: L1 only)."""
    skim_file(source, format, selection, parquet, cutflow, step_size=step_size, chunk_bytes=chunk_bytes,
              l1_tree=l1_tree or None, part=part)  # fmt: skip


def merge(*, parts: list[str], cutflows: list[str], parquet: str, cutflow: str) -> None:
    """One dataset's skim: the parts concatenated in order, their cutflows summed."""
    merge_parts(parts, parquet, cutflows, cutflow)
