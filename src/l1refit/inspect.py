"""What a file is: detect its format and summarise it (``l1refit inspect`` and the inventory rule)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .datasets import is_remote
from .errors import FormatError
from .formats import l1ntuple, scouting
from .io import atomic_path

ROOT_MAGIC = b"root"
FORMATS = ("l1ntuple", *scouting.FORMATS)


def detect_format(path: str | Path) -> str:
    """``l1ntuple`` for a ROOT file, else the scouting format (``scouting-run2``/``scouting-run3``).

    Remote URLs cannot be sniffed cheaply; they are taken as L1Ntuples (the only format served over xrootd).
    """
    if is_remote(str(path)):
        return "l1ntuple"
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as stream:
        head = stream.read(8)
    # "root" then the big-endian file version (e.g. 62206 for ROOT 6.22/06); a text file starting "root:"
    # (like /etc/passwd) fails the version check
    if head[:4] == ROOT_MAGIC and len(head) == 8 and 0 < int.from_bytes(head[4:], "big") < 1_000_000:
        return "l1ntuple"
    return scouting.detect_format(path)


def inspect_file(
    path: str | Path,
    fmt: str | None = None,
    *,
    chunk_bytes: int = scouting.DEFAULT_CHUNK_BYTES,
    n_first: int = 3,
    l1_tree: str = l1ntuple.TREES["l1"],
) -> dict[str, Any]:
    """Summary of one file; with ``fmt`` given, a file of another format is a FormatError naming both."""
    detected = detect_format(path)
    if fmt is not None and fmt != detected:
        raise FormatError(path, f"is a {detected} file, but the format {fmt!r} was expected")
    if detected == "l1ntuple":
        summary = l1ntuple.summarize(path, l1_tree=l1_tree, n_first=n_first)
        summary["format"] = "l1ntuple"
        return summary
    return scouting.summarize(path, detected, n_first=n_first, chunk_bytes=chunk_bytes)


def write_inventory(
    paths: list[str], fmt: str, output: str | Path, *, chunk_bytes: int, l1_tree: str | None = None
) -> dict[str, Any]:
    """Summarise every input file of a dataset into one JSON file (written atomically), with totals."""
    files = []
    for path in paths:
        print(f"inspecting {path}", flush=True)
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
    keys = ("n_events", "n_l1_muons", "n_offline_muons", "n_orbits", "n_bx", "n_muons")
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
