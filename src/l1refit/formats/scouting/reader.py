"""Reading scouting raw files of either era into one awkward layout: detection, streaming, warnings, summary.

One record per BX: ``run, orbit, bx`` (uint32) and ``muons`` with the fields :data:`.records.MUON_FIELDS`.
Muons the CMSSW unpackers drop are dropped here too; a BX record whose muons were all dropped stays, with an
empty list, so that BX counts match the file. See docs/formats.md §3.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import awkward as ak

from l1refit.errors import FormatError
from l1refit.formats.registry import SCOUTING_FORMATS
from l1refit.formats.scouting import run2, run3
from l1refit.formats.scouting.records import Block, Stats, empty_block
from l1refit.formats.scouting.stream import is_bz2, open_raw, read_bytes

DEFAULT_CHUNK_BYTES = 64 << 20
_FMT_ALIASES = {f.removeprefix("scouting-"): f for f in SCOUTING_FORMATS} | {f: f for f in SCOUTING_FORMATS}
_BIT27_MIN_MUONS = 20  # a handful of muons can all have bit 27 set by chance


class ScoutingWarning(UserWarning):
    """Something in a scouting file was skipped or looks suspicious, but the file could be read."""


class ScoutingQuirkWarning(ScoutingWarning):
    """A known producer bug (the Run-2 bit-27 forcing, docs/formats.md §3.1) corrupts fields of this file."""


def _fmt(path: Path, fmt: str | None) -> str:
    if fmt is None:
        return detect_format(path)
    try:
        return _FMT_ALIASES[fmt]
    except KeyError:
        raise ValueError(f"unknown scouting format {fmt!r}; allowed: {', '.join(_FMT_ALIASES)}") from None


def detect_format(path) -> str:
    """``"scouting-run3"`` for a ``RAW_`` container, ``"scouting-run2"`` for a consistent BX-record stream.

    The Run-2 check walks the record headers in the first 64 KiB with the reader's header checks (muon counts
    ≤ 8 in their 8-bit fields, bits 24 and 8 set), and the first record must fit in the file. The readers then
    check every record of the file as they stream it (docs/formats.md §3.5). Anything else is a FormatError
    naming the file.
    """
    path = Path(path)
    with open_raw(path) as stream:
        head = read_bytes(stream, 1 << 16, path, 0)
    if not head:
        raise FormatError(path, "empty file", offset=0)
    if head[:4] == run3.RAW_MAGIC:
        return "scouting-run3"
    bad = run2.first_inconsistency(head)
    if bad is not None:
        offset, reason = bad
        what = f"neither a Run-3 RAW_ container nor a Run-2 scouting stream: {reason}"
        raise FormatError(path, what, offset=offset)
    return "scouting-run2"


def iterate(
    path, fmt: str | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES, *, drop_intermediate: bool = True
) -> Iterator[ak.Array]:
    """Yield the BX records of a scouting file in arrays of whole records, reading ``chunk_bytes`` at a time.

    ``drop_intermediate`` applies the CMSSW intermediate-muon rule to Run-2 files (Run-3 files flag them).
    Warnings (:class:`ScoutingQuirkWarning` for the bit-27 quirk, :class:`ScoutingWarning` for skipped FRD
    events) need the whole file and are emitted after the last chunk.
    """
    path = Path(path)
    fmt = _fmt(path, fmt)
    stats = Stats()
    for block in _blocks(path, fmt, chunk_bytes, drop_intermediate, stats):
        yield block.array()
    _warn(path, fmt, stats)


def _blocks(path: Path, fmt: str, chunk_bytes: int, drop_intermediate: bool, stats: Stats) -> Iterator[Block]:
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    with open_raw(path) as stream:
        if fmt == "scouting-run2":
            yield from run2.blocks(stream, path, chunk_bytes, drop_intermediate, stats)
        else:
            yield from run3.blocks(stream, path, chunk_bytes, stats)


def read(path, fmt: str | None = None, chunk_bytes: int | None = None, *, drop_intermediate: bool = True) -> ak.Array:
    """The whole file as one array of BX records: the concatenation of :func:`iterate`, with its warnings.

    By default an uncompressed file is read as one block: the result is about 3.6 times the file size, so
    concatenating chunks would need more memory (and time) than holding the raw file once. Compressed files
    are read in :data:`DEFAULT_CHUNK_BYTES` blocks.
    """
    path = Path(path)
    fmt = _fmt(path, fmt)
    if chunk_bytes is None:
        chunk_bytes = DEFAULT_CHUNK_BYTES if is_bz2(path) else path.stat().st_size + 1
    stats = Stats()
    blocks = list(_blocks(path, fmt, chunk_bytes, drop_intermediate, stats))
    _warn(path, fmt, stats)
    if not blocks:
        return empty_block().array()
    return (blocks[0] if len(blocks) == 1 else Block.concatenate(blocks)).array()


def _warn(path: Path, fmt: str, stats: Stats) -> None:
    for category, message in _diagnose(path, fmt, stats):
        warnings.warn(message, category, stacklevel=3)


def _bit27_fraction(stats: Stats) -> float | None:
    return stats.n_bit27 / stats.n_raw_muons if stats.n_raw_muons else None


def _diagnose(path: Path, fmt: str, stats: Stats) -> list[tuple[type[Warning], str]]:
    """The warnings a file deserves, from its streaming statistics."""
    out = []
    fraction = _bit27_fraction(stats)
    if fmt == "scouting-run2" and fraction == 1.0 and stats.n_raw_muons >= _BIT27_MIN_MUONS:
        message = (
            f"{path}: bit 27 of the f word is set in {fraction:.0%} of {stats.n_raw_muons} muons, as the "
            "scdaq versions of 2018-11 to 2021-02 forced it: hwEtaAtVtx (its bit 4) is corrupted and the "
            "intermediate-muon rule cannot work; use the muon-system eta (hwEta) instead"
        )
        out.append((ScoutingQuirkWarning, message))
    if stats.skipped_sources:
        ids = ", ".join(f"{src} ({n}x)" for src, n in sorted(stats.skipped_sources.items()))
        n = sum(stats.skipped_sources.values())
        out.append((ScoutingWarning, f"{path}: skipped {n} FRD events of non-GMT source ids: {ids}"))
    return out


def bit27_fraction(path, fmt: str | None = None) -> float | None:
    """Fraction of the muons of a Run-2 file (before any is dropped) whose f word has bit 27 set.

    None for a file without muons and for Run-3 files, which the quirk does not concern.
    """
    return summarize(path, fmt, n_first=0)["bit27_fraction"]


def summarize(path, fmt: str | None = None, *, n_first: int = 3, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> dict:
    """Stream the file once and report what ``l1refit inspect`` prints.

    Keys: ``path, format, era, run, n_orbits, n_bx, n_muons`` (after the drop rules), ``n_muons_raw``,
    ``bit27_fraction`` (over raw muons; Run-2 only, else None), ``header`` (the Run-3 file header, else None),
    ``first`` (the first ``n_first`` BX records as Python dicts) and ``warnings`` (the messages
    :func:`iterate` would emit). Run-2 orbits are counted as changes of the orbit number along the stream.
    """
    path = Path(path)
    fmt = _fmt(path, fmt)
    stats = Stats()
    n_bx = n_muons = 0
    first: list = []
    for chunk in _blocks(path, fmt, chunk_bytes, True, stats):
        n_bx += len(chunk)
        n_muons += int(chunk.offsets[-1])
        if len(first) < n_first:
            first.extend(chunk.array()[: n_first - len(first)].to_list())
    era = fmt.removeprefix("scouting-")
    run = first[0]["run"] if first else run2.run_from_name(path) if era == "run2" else stats.header["run"]
    return {
        "path": str(path), "format": fmt, "era": era, "run": run, "n_orbits": stats.n_orbits, "n_bx": n_bx,
        "n_muons": n_muons, "n_muons_raw": stats.n_raw_muons,
        "bit27_fraction": _bit27_fraction(stats) if era == "run2" else None,
        "header": stats.header, "first": first, "warnings": [msg for _, msg in _diagnose(path, fmt, stats)],
    }  # fmt: skip
