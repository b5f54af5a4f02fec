"""Skim stage (workflow/rules/skim.smk): select and match one input file; merge a dataset's parts."""

from __future__ import annotations

from l1refit.skim.files import merge_parquet, skim_file
from l1refit.skim.files import merge_skims as merge_parts


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
    candidates: str,
) -> None:
    """Barrel L1 muons of one file matched one-to-one to offline muons at station 2 (scouting: L1 only), and
    every selected L1 muon with its neighbours and fake label (the candidate table)."""
    skim_file(source, format, selection, parquet, cutflow, step_size=step_size, chunk_bytes=chunk_bytes,
              l1_tree=l1_tree or None, part=part, out_candidates=candidates)  # fmt: skip


def merge(
    *, parts: list[str], cutflows: list[str], candidate_parts: list[str], parquet: str, cutflow: str, candidates: str
) -> None:
    """One dataset's skim and candidate table: the parts concatenated in order, their cutflows summed."""
    merge_parts(parts, parquet, cutflows, cutflow)
    merge_parquet(candidate_parts, candidates)
