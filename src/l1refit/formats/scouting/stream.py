"""Reading a raw file in blocks of whole units (BX records, FRD events), decompressing bz2 on the fly.

Errors name the file and the byte offset; for ``.bz2`` files the offset is in the decompressed stream.
"""

from __future__ import annotations

import bz2
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from l1refit.errors import FormatError
from l1refit.formats.scouting.records import Block


def is_bz2(path: Path) -> bool:
    """bz2 is recognised by its magic, whatever the file name says."""
    with open(path, "rb") as raw:
        magic = raw.read(4)
    return magic[:3] == b"BZh" and magic[3:4].isdigit()


@contextlib.contextmanager
def open_raw(path: Path) -> Iterator[BinaryIO]:
    """Open a raw file, decompressing bz2 on the fly."""
    if is_bz2(path):
        with bz2.BZ2File(path) as stream:
            yield stream
    else:
        with open(path, "rb") as raw:
            yield raw


def _fill(stream: BinaryIO, view: memoryview, path: Path, offset: int) -> int:
    """Fill ``view`` from the stream (short only at its end); a corrupt bz2 stream becomes a FormatError."""
    got = 0
    try:
        while got < len(view):
            n = stream.readinto(view[got:])
            if not n:
                break
            got += n
    except (OSError, EOFError) as exc:
        raise FormatError(path, f"corrupt compressed stream: {exc}", offset=offset + got) from exc
    return got


def read_bytes(stream: BinaryIO, n: int, path: Path, offset: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream); ``offset`` is where they start, for errors."""
    buf = bytearray(n)
    return bytes(buf[: _fill(stream, memoryview(buf), path, offset)])


# parse(view, base offset, at end of file) -> (bytes consumed, bytes the next unit needs, block or None)
Parser = Callable[[memoryview, int, bool], tuple[int, int, Block | None]]


def stream_blocks(stream: BinaryIO, path: Path, base: int, chunk_bytes: int, parse: Parser) -> Iterator[Block]:
    """Feed ``parse`` blocks of about ``chunk_bytes``; it consumes whole units and the tail carries over.

    One buffer is reused for every block (fresh 64 MiB allocations cost page faults); it grows only when a
    single unit is larger than ``chunk_bytes``.
    """
    buf = bytearray(chunk_bytes)
    filled = need = 0
    while True:
        want = max(chunk_bytes, need - filled)
        if len(buf) < filled + want:
            grown = bytearray(filled + want)
            grown[:filled] = buf[:filled]
            buf = grown
        view = memoryview(buf)  # not released explicitly: a FormatError's traceback may still hold a view
        got = _fill(stream, view[filled : filled + want], path, base + filled)
        filled += got
        eof = got < want
        consumed, need, chunk = parse(view[:filled], base, eof)
        if chunk is not None and len(chunk):
            yield chunk
        if consumed:
            buf[: filled - consumed] = buf[consumed:filled]
            filled -= consumed
        base += consumed
        if eof:
            return
