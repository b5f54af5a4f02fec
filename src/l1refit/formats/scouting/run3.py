"""Run-3 scouting files (the ``RAW_`` container of FRD events, one per orbit): reader and writer.

A ``RAW_`` file header (v2, 32 bytes, or v1, 24 bytes), then FRD events (header V3/V4 with padding, or V5/V6)
whose payload is ``u32 sourceId`` followed by BX records of 12-byte muons ``{f, s, extra}``. Events of a source
other than GMT (1) are skipped and counted; the crc32c is neither checked nor written (CMSSW does not check it);
``orbit`` is masked with 0x7FFFFFFF and ``bx`` kept unmasked, as CMSSW does. Every FRD event and BX record is
checked as it is read: the event framing, muon counts of at most 8 per slot in their 8-bit fields, records that
end exactly at the end of their payload, ``bx`` ≤ 3564 and one orbit for all records of an event. See
docs/formats.md §3.2, §3.3 and §3.5 (what is checked, what is not).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numba
import numpy as np

from l1refit.errors import FormatError
from l1refit.formats import gmt
from l1refit.formats.scouting import packing
from l1refit.formats.scouting.records import DROP_RUN3, LAST_BX, MAX_PER_SLOT, Stats, build_block
from l1refit.formats.scouting.stream import read_bytes, stream_blocks

RAW_MAGIC = b"RAW_"
_GMT_SOURCE_ID = 1
_FRD_VERSION = 6
_FRD_HEADER_WORDS = {3: 7, 4: 8, 5: 6, 6: 6}  # by version; V3/V4 end in eventSize, paddingSize, checksum

_OK, _INCOMPLETE, _BAD_VERSION, _BAD_ALIGN, _SHORT_PAYLOAD, _BX_HEADER_OVERRUN, _BX_OVERRUN = range(7)
_BAD_COUNTS, _BAD_BX, _BAD_ORBIT = range(7, 10)
_ORBIT_MASK = 0x7FFFFFFF
_ERRORS = {
    _BAD_VERSION: "unknown FRD event header version {version} (expected 3, 4, 5 or 6)",
    _BAD_ALIGN: "FRD event size or padding is not a multiple of 4 bytes",
    _SHORT_PAYLOAD: "FRD event payload shorter than its 4-byte source id",
    _BX_HEADER_OVERRUN: "BX record header runs past the end of its FRD event payload",
    _BX_OVERRUN: "BX record with mA={a}, mB={b} muons runs past the end of its FRD event payload",
    _BAD_COUNTS: "BX record header 0x{header:08x} has muon counts {a}+{b} > " + str(MAX_PER_SLOT),
    _BAD_BX: "BX record bx {bx} is above " + str(LAST_BX) + ", the last BX of an orbit",
    _BAD_ORBIT: "BX record orbit {orbit} differs from orbit {first} of the first BX record of its FRD event "
    "(one event holds one orbit)",
}


@numba.njit(cache=True, nogil=True)
def _scan(words, ev_pos, ev_src, rec_start, rec_a, rec_b, rec_event):
    """Walk FRD events and the BX records of their GMT payloads.

    Returns (status, word position, events, records, words needed). On ``_INCOMPLETE`` the position is the
    first event not wholly in ``words`` and the last value its length (or its header's); on an error status
    the position is the bad event or BX record (and for ``_BAD_ORBIT`` the last value the event's orbit).
    """
    n = words.size
    pos = 0
    ne = 0
    nr = 0
    while pos < n:
        if pos + 6 > n:
            return _INCOMPLETE, pos, ne, nr, 6
        version = words[pos] & 0xFFFF
        if version == 5 or version == 6:
            hdr, size_at, pad_at = 6, 4, -1
        elif version == 3:
            hdr, size_at, pad_at = 7, 4, 5
        elif version == 4:
            hdr, size_at, pad_at = 8, 5, 6
        else:
            return _BAD_VERSION, pos, ne, nr, 0
        if pos + hdr > n:
            return _INCOMPLETE, pos, ne, nr, hdr
        size = np.int64(words[pos + size_at])
        pad = np.int64(words[pos + pad_at]) if pad_at >= 0 else np.int64(0)
        if size % 4 != 0 or pad % 4 != 0:
            return _BAD_ALIGN, pos, ne, nr, 0
        if size < 4:
            return _SHORT_PAYLOAD, pos, ne, nr, 0
        total = hdr + (size + pad) // 4
        if pos + total > n:
            return _INCOMPLETE, pos, ne, nr, total
        p0 = pos + hdr
        p1 = p0 + size // 4
        ev_pos[ne] = pos
        ev_src[ne] = words[p0]
        if words[p0] == _GMT_SOURCE_ID:
            q = p0 + 1
            first_orbit = words[q + 2] & _ORBIT_MASK if q + 3 <= p1 else 0
            while q < p1:
                if q + 3 > p1:
                    return _BX_HEADER_OVERRUN, q, ne, nr, 0
                header = words[q]
                a = (header >> 16) & 0xFF
                b = header & 0xFF
                if a > MAX_PER_SLOT or b > MAX_PER_SLOT:
                    return _BAD_COUNTS, q, ne, nr, 0
                rsize = 3 + 3 * (a + b)
                if q + rsize > p1:
                    return _BX_OVERRUN, q, ne, nr, 0
                if words[q + 1] > LAST_BX:
                    return _BAD_BX, q, ne, nr, 0
                if words[q + 2] & _ORBIT_MASK != first_orbit:
                    return _BAD_ORBIT, q, ne, nr, first_orbit
                rec_start[nr] = q
                rec_a[nr] = a
                rec_b[nr] = b
                rec_event[nr] = ne
                nr += 1
                q += rsize
        ne += 1
        pos += total
    return _OK, pos, ne, nr, 0


def _file_header(stream, path: Path) -> dict:
    """Parse the RAW_ file header (v2, 32 bytes; v1, 24 bytes)."""
    head = read_bytes(stream, 8, path, 0)
    if not head:
        raise FormatError(path, "empty file", offset=0)
    if head[:4] != RAW_MAGIC:
        what = f"not a Run-3 scouting file: magic {head[:4]!r}, expected {RAW_MAGIC!r}"
        raise FormatError(path, what, offset=0)
    version = head[4:8]
    if version == b"0002":
        rest = read_bytes(stream, 24, path, 8)
        if len(rest) < 24:
            raise FormatError(path, f"truncated RAW_0002 file header ({8 + len(rest)} of 32 bytes)", offset=0)
        size, data_type, n_events, run, lumi, file_size = struct.unpack("<HHIIIQ", rest)
    elif version == b"0001":
        rest = read_bytes(stream, 16, path, 8)
        if len(rest) < 16:
            raise FormatError(path, f"truncated RAW_0001 file header ({8 + len(rest)} of 24 bytes)", offset=0)
        size, n_events, lumi, file_size = struct.unpack("<HHIQ", rest)
        data_type = run = None
    else:
        raise FormatError(path, f"unknown RAW_ file header version {version!r}", offset=4)
    minimum = 8 + len(rest)
    if size < minimum or size % 4:
        what = f"file header size {size} is not a multiple of 4 of at least {minimum}"
        raise FormatError(path, what, offset=8)
    if len(read_bytes(stream, size - minimum, path, minimum)) < size - minimum:
        raise FormatError(path, f"truncated file header of {size} bytes", offset=0)
    return {
        "version": version.decode(), "header_size": size, "data_type": data_type, "n_events": n_events,
        "run": run, "lumi": lumi, "file_size": file_size,
    }  # fmt: skip


def _error(path: Path, status: int, words: np.ndarray, pos: int, offset: int, first_orbit: int):
    header = int(words[pos])
    values = {"header": header, "version": header & 0xFFFF, "a": (header >> 16) & 0xFF, "b": header & 0xFF}
    if status in (_BAD_BX, _BAD_ORBIT):
        values |= {"bx": int(words[pos + 1]), "orbit": int(words[pos + 2]) & _ORBIT_MASK, "first": first_orbit}
    raise FormatError(path, _ERRORS[status].format(**values), offset=offset)


def _truncated(path: Path, tail: np.ndarray, left: int, offset: int):
    """Explain why the last, incomplete FRD event of a file cannot be read."""
    hdr = _FRD_HEADER_WORDS.get(int(tail[0]) & 0xFFFF, 6) if tail.size else 6
    if left < 4 * hdr:
        raise FormatError(path, f"truncated FRD event header: only {left} bytes left", offset=offset)
    size = int(tail[hdr - 2] if hdr == 6 else tail[hdr - 3])
    what = f"FRD eventSize {size} overruns the file: only {left - 4 * hdr} bytes follow the event header"
    raise FormatError(path, what, offset=offset)


def blocks(stream, path: Path, chunk_bytes: int, stats: Stats):
    """Yield the BX records of the GMT events of a RAW_ file block by block; the file header goes to ``stats``."""
    header = stats.header = _file_header(stream, path)

    def parse(buf: memoryview, base: int, eof: bool):
        words = np.frombuffer(buf, dtype="<u4", count=len(buf) // 4)
        ev_pos = np.empty(words.size // 6 + 1, np.int64)
        ev_src = np.empty(ev_pos.size, np.uint32)
        rec_start = np.empty(words.size // 3 + 1, np.int64)
        rec_a, rec_b = np.empty(rec_start.size, np.uint8), np.empty(rec_start.size, np.uint8)
        rec_event = np.empty(rec_start.size, np.int64)
        status, pos, ne, nr, need = _scan(words, ev_pos, ev_src, rec_start, rec_a, rec_b, rec_event)
        if status not in (_OK, _INCOMPLETE):
            _error(path, status, words, pos, base + 4 * pos, need)
        consumed = 4 * pos
        if eof and consumed < len(buf):
            _truncated(path, words[pos:], len(buf) - consumed, base + consumed)
        gmt_events = ev_src[:ne] == _GMT_SOURCE_ID
        stats.n_orbits += int(np.count_nonzero(gmt_events))
        stats.skipped_sources.update(ev_src[:ne][~gmt_events].tolist())
        if not nr:
            return consumed, 4 * need, None
        run = words[ev_pos[rec_event[:nr]] + 1]
        chunk = build_block(words, rec_start[:nr], rec_a[:nr], rec_b[:nr], run, "run3", DROP_RUN3, stats)
        return consumed, 4 * need, chunk

    yield from stream_blocks(stream, path, header["header_size"], chunk_bytes, parse)
    end = stream.tell()
    if header["file_size"] and end != header["file_size"]:
        raise FormatError(path, f"file header says {header['file_size']} bytes, file has {end}", offset=end)


def write_run3(path, bx_records, *, run: int, lumi: int, data_type: int = 0, flags: int = 0) -> None:
    """Write BX records as a Run-3 ``RAW_0002`` file: one FRD V6 event (source id 1) per run of equal orbits.

    Consecutive records with the same orbit form one event, so the reader returns them in the same order.
    Every event gets ``run`` and ``lumi`` (the records' own ``run`` is not stored); ``data_type`` goes into
    the file header (the Run-3 value is unknown, docs/formats.md §8) and the crc32c is written as 0. Muons with
    hwPt == 0 or hwQual == 0 are refused because readers drop them; orbit must fit in 31 bits (readers mask
    bit 31), bx must be at most 3564 and a record holds at most 8 muons per slot (readers reject the rest).
    """
    flat = packing.flatten(bx_records, MAX_PER_SLOT)
    if flat.orbit.size and flat.orbit.max() > _ORBIT_MASK:
        raise ValueError("Run-3 orbit must fit in 31 bits (readers mask it with 0x7FFFFFFF)")
    if flat.bx.size and flat.bx.max() > LAST_BX:
        raise ValueError(f"Run-3 bx must be at most {LAST_BX} (CMSSW indexes its orbit buffer with it)")
    if np.any(flat.fields["hwPt"] == 0) or np.any(flat.fields["hwQual"] == 0):
        raise ValueError("muons with hwPt == 0 or hwQual == 0 cannot be written: readers drop them")
    lsw, msw, extra = gmt.encode(flat.fields, "run3", slot=flat.slot)
    rec_words = 3 + 3 * (flat.n_a + flat.n_b)
    new_event = np.ones(rec_words.size, bool)
    new_event[1:] = flat.orbit[1:] != flat.orbit[:-1]
    first_rec = np.flatnonzero(new_event)
    before = np.cumsum(rec_words) - rec_words
    # each event adds 7 words before its records: the 6-word FRD header and the source id
    ev_start = 8 + 7 * np.arange(first_rec.size) + before[first_rec]
    starts = 8 + 7 * np.cumsum(new_event) + before
    payload = 4 + 4 * np.add.reduceat(rec_words, first_rec) if first_rec.size else first_rec
    words = np.empty(8 + 7 * first_rec.size + int(rec_words.sum()), np.uint32)
    file_header = struct.pack(
        "<4s4sHHIIIQ", RAW_MAGIC, b"0002", 32, data_type, first_rec.size, run, lumi, 4 * words.size
    )
    words[:8] = np.frombuffer(file_header, "<u4")
    event_header = (_FRD_VERSION | flags << 16, run, lumi, flat.orbit[first_rec], payload, 0, _GMT_SOURCE_ID)
    for k, value in enumerate(event_header):
        words[ev_start + k] = value
    packing.pack_records(flat, starts, 3, words, (lsw, msw, extra))
    packing.write_words(path, words)
