"""Run-2 scouting streams (the 2018 demonstrator, ``<prefix>_<run>_<index>.dat[.bz2]``): reader and writer.

No file header: a plain concatenation of BX records ``u32 header, u32 bx, u32 orbit, (mA+mB) x {u32 f, u32 s}``.
``bx`` is masked with 0xFFFF (its upper bits carry the link id and an intermediate-muon flag); the run number is
taken from the file name. Every record header is checked as it is read: muon counts of at most 8 per slot in
their 8-bit fields, and bit 0 of bxmatch and of orbitmatch set (link 0 always matches itself). Nothing else in a
record is fixed by the format (docs/formats.md §3.1, §3.5: what is checked, what is not, and why).
"""

from __future__ import annotations

import re
from pathlib import Path

import numba
import numpy as np

from l1refit.errors import FormatError
from l1refit.formats import gmt
from l1refit.formats.scouting import packing
from l1refit.formats.scouting.records import DROP_RUN2, KEEP_ALL, MAX_PER_SLOT, Stats, build_block
from l1refit.formats.scouting.run3 import RAW_MAGIC
from l1refit.formats.scouting.stream import stream_blocks

MAX_LINKS = MAX_PER_SLOT  # muons per slot in a Run-2 BX record: one per scouting input link (docs/formats.md §3.1)
_LINK0_MATCH = 1 << 24 | 1 << 8  # bit 0 of bxmatch and of orbitmatch: scdaq compares link 0 with itself
_OK, _BAD_HEADER = range(2)
_NAME = re.compile(r"^.+_(\d+)_(\d+)\.dat(?:\.bz2)?$")


@numba.njit(cache=True, nogil=True)
def _scan(words, starts, n_a, n_b):
    """Walk and check Run-2 BX records: return (status, records, word position, words needed).

    With ``_OK`` the position is the first record not wholly in ``words`` (or the end) and the last value its
    length; with ``_BAD_HEADER`` it is the record whose header :func:`_header_problem` rejects.
    """
    n = words.size
    pos = 0
    k = 0
    while pos + 3 <= n:
        header = words[pos]
        a = (header >> 16) & 0xFF
        b = header & 0xFF
        if a > MAX_PER_SLOT or b > MAX_PER_SLOT or header & _LINK0_MATCH != _LINK0_MATCH:
            return _BAD_HEADER, k, pos, 0
        size = 3 + 2 * (a + b)
        if pos + size > n:
            return _OK, k, pos, size
        starts[k] = pos
        n_a[k] = a
        n_b[k] = b
        k += 1
        pos += size
    return _OK, k, pos, 3


def _header_problem(header: int) -> str | None:
    """What is wrong with a Run-2 BX record header, or None (the checks of :func:`_scan`)."""
    n_a, n_b = (header >> 16) & 0xFF, header & 0xFF
    if n_a > MAX_PER_SLOT or n_b > MAX_PER_SLOT:
        return f"BX record header 0x{header:08x} has muon counts {n_a}+{n_b} > {MAX_PER_SLOT}"
    if header & _LINK0_MATCH != _LINK0_MATCH:
        return (
            f"BX record header 0x{header:08x} has bit 0 of bxmatch or orbitmatch (bit 24 or 8) clear, "
            "which the producer sets in every record"
        )
    return None


def run_from_name(path) -> int:
    """Run number of a Run-2 file ``<prefix>_<run>_<index>.dat[.bz2]``; 0 when the name has another form."""
    match = _NAME.match(Path(path).name)
    return int(match.group(1)) if match else 0


def blocks(stream, path: Path, chunk_bytes: int, drop_intermediate: bool, stats: Stats):
    """Yield the BX records of a Run-2 stream block by block (see :func:`.stream.stream_blocks`)."""
    run = run_from_name(path)
    rule = DROP_RUN2 if drop_intermediate else KEEP_ALL

    def parse(buf: memoryview, base: int, eof: bool):
        if base == 0:
            _check_start(path, buf, eof)
        words = np.frombuffer(buf, dtype="<u4", count=len(buf) // 4)
        starts = np.empty(words.size // 3 + 1, np.int64)
        n_a, n_b = np.empty(starts.size, np.uint8), np.empty(starts.size, np.uint8)
        status, k, end, need = _scan(words, starts, n_a, n_b)
        if status != _OK:
            raise FormatError(path, _header_problem(int(words[end])), offset=base + 4 * end)
        consumed = 4 * end
        if eof and consumed < len(buf):
            _truncated(path, words, end, len(buf) - consumed, base + consumed)
        if not k:
            return consumed, 4 * need, None
        chunk = build_block(words, starts[:k], n_a[:k], n_b[:k], np.full(k, run, np.uint32), "run2", rule, stats)
        stats.count_orbits(chunk.orbit)
        return consumed, 4 * need, chunk

    yield from stream_blocks(stream, path, 0, chunk_bytes, parse)


def _check_start(path: Path, buf: memoryview, eof: bool) -> None:
    if eof and not len(buf):
        raise FormatError(path, "empty file", offset=0)
    if bytes(buf[:4]) == RAW_MAGIC:
        raise FormatError(path, "this is a Run-3 RAW_ container, not a Run-2 scouting stream", offset=0)


def _truncated(path: Path, words: np.ndarray, end: int, left: int, offset: int):
    if left < 12:
        raise FormatError(path, f"truncated BX record header: only {left} bytes left", offset=offset)
    header = int(words[end])
    n_a, n_b = (header >> 16) & 0xFF, header & 0xFF
    size = 12 + 8 * (n_a + n_b)
    raise FormatError(
        path, f"truncated BX record: mA={n_a}, mB={n_b} need {size} bytes, only {left} left", offset=offset
    )


def first_inconsistency(head: bytes) -> tuple[int, str] | None:
    """(offset, reason) of the first bytes in ``head`` that cannot be a Run-2 BX record, or None."""
    words = np.frombuffer(head, dtype="<u4", count=len(head) // 4)
    if words.size < 3:
        return 0, f"{len(head)} bytes are too short for a BX record"
    pos = 0
    while pos + 3 <= words.size:
        header = int(words[pos])
        problem = _header_problem(header)
        if problem is not None:
            return 4 * pos, problem
        n_a, n_b = (header >> 16) & 0xFF, header & 0xFF
        if pos == 0 and 3 + 2 * (n_a + n_b) > words.size and len(head) < 1 << 16:
            return 0, f"the first BX record ({12 + 8 * (n_a + n_b)} bytes) is longer than the file"
        pos += 3 + 2 * (n_a + n_b)
    return None


def write_run2(path, bx_records) -> None:
    """Write BX records as a Run-2 demonstrator stream (``.bz2`` suffix: compressed).

    The run number has no place in the file (name it ``scout_<run:06d>_<index:06d>.dat``); bx must fit in 16
    bits; hwPtUnconstrained, hwDXY and the floats are ignored. bxmatch and orbitmatch are written as 0xFF.
    At least one record is needed: a Run-2 stream without records is an empty file, which readers reject.
    """
    flat = packing.flatten(bx_records, MAX_LINKS)
    if not flat.bx.size:
        raise ValueError("no BX records: a Run-2 stream without records would be an empty file")
    if flat.bx.size and flat.bx.max() > 0xFFFF:
        raise ValueError("Run-2 bx must fit in 16 bits (readers mask it with 0xFFFF)")
    lsw, msw = gmt.encode(flat.fields, "run2")
    total = flat.n_a + flat.n_b
    starts = 3 * np.arange(total.size) + 2 * (np.cumsum(total) - total)
    words = np.empty(3 * total.size + 2 * int(total.sum()), np.uint32)
    packing.pack_records(flat, starts, 2, words, (lsw, msw))
    packing.write_words(path, words)
