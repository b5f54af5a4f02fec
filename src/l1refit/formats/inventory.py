"""What a file is: its format and a summary of its content (``l1refit inspect`` and the inventory rule)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from l1refit.formats import l1ntuple, l1scouting, scouting
from l1refit.formats.output import atomic_path
from l1refit.formats.registry import check_format

log = logging.getLogger(__name__)


def inspect_file(
    path: str | Path,
    fmt: str | None = None,
    *,
    chunk_bytes: int = scouting.DEFAULT_CHUNK_BYTES,
    n_first: int = 3,
    l1_tree: str = l1ntuple.TREES["l1"],
) -> dict[str, Any]:
    """Summary of one file; with ``fmt`` given, a file of another format is a FormatError naming both."""
    detected = check_format(path, fmt)
    if detected == "l1ntuple":
        summary = l1ntuple.summarize(path, l1_tree=l1_tree, n_first=n_first)
        summary["format"] = "l1ntuple"
        return summary
    if detected in l1scouting.FORMATS:
        return l1scouting.summarize(path, detected, n_first=n_first)
    if detected == "nanoaod":
        from l1refit.formats import nanoaod  # imported here: it loads coffea

        return nanoaod.summarize(path, n_first=n_first)
    return scouting.summarize(path, detected, n_first=n_first, chunk_bytes=chunk_bytes)


def write_inventory(
    paths: list[str], fmt: str, output: str | Path, *, chunk_bytes: int, l1_tree: str | None = None
) -> dict[str, Any]:
    """Summarise every input file of a dataset into one JSON file (written atomically), with totals."""
    files = []
    for path in paths:
        log.info("inspecting %s", path)
        kwargs = {"l1_tree": l1_tree} if l1_tree else {}
        summary = inspect_file(path, fmt, chunk_bytes=chunk_bytes, **kwargs)
        files.append(_jsonable(summary))
    inventory = {
        "format": fmt,
        "n_files": len(files),
        "totals": _totals(files),
        "files": files,
    }
    with atomic_path(output) as tmp:
        tmp.write_text(json.dumps(inventory, indent=1) + "\n")
    return inventory


def _totals(files: list[dict]) -> dict[str, int]:
    keys = ("n_events", "n_entries", "n_l1_muons", "n_offline_muons", "n_orbits", "n_bx", "n_muons")
    return {k: sum(f[k] for f in files if f.get(k) is not None) for k in keys if any(k in f for f in files)}


def _jsonable(value):
    """Plain JSON types (NumPy scalars from awkward's to_list become ints/floats)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable text of :func:`inspect_file`'s summary, for the terminal."""
    lines = [f"{summary['path']}", f"  format      {summary['format']}"]
    if summary["format"] == "l1ntuple":
        lines += [
            f"  layout      {summary['layout']} (L1 tree {summary['l1_tree']})",
            f"  events      {summary['n_events']}",
            f"  L1 muons    {summary['n_l1_muons']}",
            f"  offline mu  {summary['n_offline_muons'] if summary['n_offline_muons'] is not None else 'no tree'}",
        ]
        if summary["zero_filled"]:
            lines.append(f"  absent (0)  {', '.join(summary['zero_filled'])}")
        lines.append("  trees       " + ", ".join(f"{t} ({len(b)} branches)" for t, b in summary["trees"].items()))
        lines.append("  first L1 muons:")
        lines += [f"    {_brief(mu)}" for mu in summary["first_l1_muons"]]
    elif summary["format"] == "nanoaod":
        offline = summary["n_offline_muons"]
        lines += [
            f"  flavour     {summary['flavour']} (barrel rule: {summary['barrel_rule']})",
            f"  events      {summary['n_entries']}",
            f"  runs        {', '.join(map(str, summary['runs'])) or 'none'}",
            f"  L1 muons    {summary['n_l1_muons']} (table cut: {summary['table_cut']})",
            f"  offline mu  {offline if offline is not None else 'none (no Muon collection)'}",
            "  first L1 muons:",
        ]
        lines += [f"    entry {mu['entry']} bx {mu['bx']}: {_brief(mu)}" for mu in summary["first_muons"]]
    elif summary["format"] in l1scouting.FORMATS:
        lines += [
            f"  collection  {summary['collection']} ({summary['n_entries']} entries)",
            f"  runs        {', '.join(map(str, summary['runs'])) or 'none'}",
            f"  orbits      {summary['n_orbits']} with muons",
            f"  BXs         {summary['n_bx']} with muons",
            f"  muons       {summary['n_muons']}",
            "  first muons:",
        ]
        lines += [f"    orbit {mu['orbit']} bx {mu['bx']}: {_brief(mu)}" for mu in summary["first_muons"]]
    else:
        lines += [
            f"  era         {summary['era']}   run {summary['run']}",
            f"  orbits      {summary['n_orbits']}",
            f"  BX records  {summary['n_bx']}",
            f"  muons       {summary['n_muons']} kept of {summary['n_muons_raw']} in the file",
        ]
        if summary.get("bit27_fraction") is not None:
            lines.append(f"  bit-27 set  {summary['bit27_fraction']:.1%} of muons (100% = the 2018-21 scdaq quirk)")
        lines.append("  first BX records:")
        for rec in summary["first"]:
            lines.append(f"    orbit {rec['orbit']} bx {rec['bx']}: {len(rec['muons'])} muon(s)")
            lines += [f"      {_brief(mu)}" for mu in rec["muons"]]
        lines += [f"  WARNING: {w}" for w in summary["warnings"]]
    return "\n".join(lines)


_BRIEF = ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual", "tfMuonIndex")


def _brief(muon: dict) -> str:
    return " ".join(f"{k}={muon[k]}" for k in _BRIEF if k in muon)
