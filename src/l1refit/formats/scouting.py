"""L1 scouting raw files (FORMATS.md §3): read and write both eras in one awkward layout.

Formats
-------
``scouting-run2``
    The 2018 demonstrator stream ``<prefix>_<run>_<index>.dat[.bz2]``: no file header, a plain concatenation
    of BX records ``u32 header, u32 bx, u32 orbit, (mA+mB) x {u32 f, u32 s}``. ``bx`` is masked with 0xFFFF
    because its upper bits carry the link id and an intermediate-muon flag (FORMATS §3.1, §8 question 3). The
    run number is not in the file: it is parsed from the file name, and is 0 when the name has another form.
``scouting-run3``
    A ``RAW_`` file header (v2, 32 bytes, or v1, 24 bytes), then one FRD event per orbit (header V3/V4 with
    padding, or V5/V6) whose payload is ``u32 sourceId`` followed by BX records of 12-byte muons
    ``{f, s, extra}``. Events of a source other than GMT (1) are skipped and counted in one
    :class:`ScoutingWarning` per file. The crc32c is neither checked nor written (CMSSW does not check it).
    ``orbit`` is masked with 0x7FFFFFFF and ``bx`` kept unmasked, as CMSSW does.

Layout (both eras)
------------------
One record per BX: ``run, orbit, bx`` (uint32 each, as the L1 scouting NanoAOD stores them) and ``muons``, a
list of records with the fields :data:`MUON_FIELDS`: the hardware integers of
:func:`l1refit.formats.gmt.decode` (int16; ``charge`` int8, ``chargeValid`` bool; ``hwPtUnconstrained`` and
``hwDXY`` are 0 for Run-2), ``slot`` (int8, 1 or 2) and float32 ``pt, eta, phi, etaAtVtx, phiAtVtx`` in the
scouting convention of :mod:`l1refit.scales`. Muons the CMSSW unpackers drop are dropped here too (Run-2:
``tfMuonIndex == 0 and hwEtaAtVtx == 0`` unless ``drop_intermediate=False``; Run-3: the intermediate flag,
extra bit 31, or ``hwPt == 0`` or ``hwQual == 0``); a BX record whose muons were all dropped stays, with an
empty list, so that BX counts match the file.

Errors name the file and the byte offset; for ``.bz2`` files the offset is in the decompressed stream.
"""

from __future__ import annotations

import bz2
import contextlib
import re
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import awkward as ak
import numba
import numpy as np

from l1refit import scales
from l1refit.errors import FormatError
from l1refit.formats import gmt
from l1refit.io import atomic_path

FORMATS = ("scouting-run2", "scouting-run3")
_FMT_ALIASES = {"run2": "scouting-run2", "run3": "scouting-run3", **{f: f for f in FORMATS}}
DEFAULT_CHUNK_BYTES = 64 << 20

HW_FIELDS = (
    "hwPt", "hwQual", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "chargeValid", "hwIso",
    "tfMuonIndex", "hwPtUnconstrained", "hwDXY",
)  # fmt: skip
FLOAT_FIELDS = ("pt", "eta", "phi", "etaAtVtx", "phiAtVtx")
MUON_FIELDS = (*HW_FIELDS, "slot", *FLOAT_FIELDS)
BX_FIELDS = ("run", "orbit", "bx", "muons")

_RUN2_NAME = re.compile(r"^.+_(\d+)_(\d+)\.dat(?:\.bz2)?$")
_MAX_LINKS = 8  # muons per slot in a Run-2 BX record: one per scouting input link (FORMATS §3.1)
_BIT27_MIN_MUONS = 20  # a handful of muons can all have bit 27 set by chance
_GMT_SOURCE_ID = 1
_RAW_MAGIC = b"RAW_"
_FRD_VERSION = 6
_FRD_HEADER_WORDS = {3: 7, 4: 8, 5: 6, 6: 6}  # by version; V3/V4 end in eventSize, paddingSize, checksum

# Float conversions as look-up tables over every bit pattern of the field: a gather is much faster than the
# float32 formulas and gives the same numbers, because the scales functions are element-wise. The η table is
# indexed by the 9-bit two's-complement pattern (hwEta & 511).
_PT_LUT = scales.hw_to_pt(np.arange(1 << 9), convention="scouting").astype(np.float32)
_ETA_LUT = scales.hw_to_eta((np.arange(1 << 9) ^ 256) - 256, convention="scouting").astype(np.float32)
_PHI_LUT = scales.hw_to_phi(np.arange(1 << 10), convention="scouting").astype(np.float32)


class ScoutingWarning(UserWarning):
    """Something in a scouting file was skipped or looks suspicious, but the file could be read."""


class ScoutingQuirkWarning(ScoutingWarning):
    """A known producer bug (the Run-2 bit-27 forcing, FORMATS §3.1) corrupts fields of this file."""


# ----------------------------------------------------------------------------------------------------------
# compiled kernels: the record walk is sequential by nature (each record's length is in its own header), and
# gathering the muon words record by record in the same style avoids five full-size index temporaries


_OK, _INCOMPLETE, _BAD_VERSION, _BAD_ALIGN, _SHORT_PAYLOAD, _BX_HEADER_OVERRUN, _BX_OVERRUN = range(7)
_KEEP_ALL, _DROP_RUN2, _DROP_RUN3 = range(3)


@numba.njit(cache=True, nogil=True)
def _scan_run2(words, starts, n_a, n_b):
    """Walk Run-2 BX records; return (records, word of the first incomplete record, its length in words)."""
    n = words.size
    pos = 0
    k = 0
    while pos + 3 <= n:
        header = words[pos]
        a = (header >> 16) & 0xF
        b = header & 0xF
        size = 3 + 2 * (a + b)
        if pos + size > n:
            return k, pos, size
        starts[k] = pos
        n_a[k] = a
        n_b[k] = b
        k += 1
        pos += size
    return k, pos, 3


@numba.njit(cache=True, nogil=True)
def _scan_run3(words, ev_pos, ev_src, rec_start, rec_a, rec_b, rec_event):
    """Walk FRD events and the BX records of their GMT payloads.

    Returns (status, word position, events, records, words needed). On ``_INCOMPLETE`` the position is the
    first event not wholly in ``words`` and the last value its length (or its header's); on an error status
    the position is the bad event or BX record.
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
            while q < p1:
                if q + 3 > p1:
                    return _BX_HEADER_OVERRUN, q, ne, nr, 0
                header = words[q]
                a = (header >> 16) & 0xF
                b = header & 0xF
                rsize = 3 + 3 * (a + b)
                if q + rsize > p1:
                    return _BX_OVERRUN, q, ne, nr, 0
                rec_start[nr] = q
                rec_a[nr] = a
                rec_b[nr] = b
                rec_event[nr] = ne
                nr += 1
                q += rsize
        ne += 1
        pos += total
    return _OK, pos, ne, nr, 0


@numba.njit(cache=True, nogil=True)
def _gather(words, starts, n_a, n_b, stride, rule, bx, orbit, offsets, f, s, extra, slot):
    """Copy bx, orbit and the muon words of each record into flat arrays, dropping muons by ``rule``.

    The drop rules test raw bits (FORMATS §2.1/§2.2): Run-2 intermediate = tfMuonIndex (s 4-10) == 0 and
    hwEtaAtVtx (f 23-31) == 0; Run-3 = extra bit 31, or hwPt (f 10-18) == 0, or hwQual (f 19-22) == 0. The
    slot is the position in the record for Run-2 and extra bit 0 for Run-3; ``extra`` is left untouched for
    Run-2 (so its pages are never mapped). Returns (kept, muons with f bit 27 set, counted before dropping).
    """
    k = 0
    bit27 = 0
    for r in range(starts.size):
        p = starts[r]
        bx[r] = words[p + 1]
        orbit[r] = words[p + 2]
        offsets[r] = k
        p += 3
        for j in range(n_a[r] + n_b[r]):
            fw = words[p]
            sw = words[p + 1]
            xw = words[p + 2] if stride == 3 else 0
            p += stride
            bit27 += (fw >> 27) & 1
            if rule == _DROP_RUN2 and (sw >> 4) & 0x7F == 0 and fw >> 23 == 0:
                continue
            if rule == _DROP_RUN3 and (xw >> 31 != 0 or (fw >> 10) & 0x1FF == 0 or (fw >> 19) & 0xF == 0):
                continue
            f[k] = fw
            s[k] = sw
            if stride == 3:
                extra[k] = xw
                slot[k] = 1 + (xw & 1)
            else:
                slot[k] = 1 if j < n_a[r] else 2
            k += 1
    offsets[starts.size] = k
    return k, bit27


@numba.njit(cache=True, nogil=True)
def _lookup(table, hw, mask, out):
    """``out = table[hw & mask]``, an order of magnitude faster than NumPy fancy indexing by int16."""
    for i in range(hw.size):
        out[i] = table[hw[i] & mask]


# ----------------------------------------------------------------------------------------------------------
# building the awkward layout


@dataclass
class _Stats:
    """Per-file counters gathered while streaming, for the warnings and :func:`summarize`."""

    n_raw_muons: int = 0
    n_bit27: int = 0
    n_orbits: int = 0
    last_orbit: int | None = None
    skipped_sources: Counter = field(default_factory=Counter)
    header: dict | None = None

    def count_orbits(self, orbit: np.ndarray) -> None:
        """Count orbit changes along the stream (Run-2 files have no orbit framing of their own)."""
        if orbit.size:
            self.n_orbits += int(np.count_nonzero(orbit[1:] != orbit[:-1]))
            self.n_orbits += int(self.last_orbit is None or orbit[0] != self.last_orbit)
            self.last_orbit = int(orbit[-1])


@dataclass
class _Block:
    """BX records as flat NumPy arrays: per-record ``run, orbit, bx``, muon ``offsets`` and ``muons`` fields.

    Blocks are concatenated as NumPy arrays, several times faster than ``ak.concatenate`` on list layouts.
    """

    run: np.ndarray
    orbit: np.ndarray
    bx: np.ndarray
    offsets: np.ndarray
    muons: dict[str, np.ndarray]

    def __len__(self) -> int:
        return self.run.size

    def array(self) -> ak.Array:
        """Wrap the arrays in the BX-record layout without copying."""
        content = ak.contents.RecordArray(
            [ak.contents.NumpyArray(self.muons[name]) for name in MUON_FIELDS], MUON_FIELDS
        )
        lists = ak.contents.ListOffsetArray(ak.index.Index64(self.offsets), content)
        columns = [ak.contents.NumpyArray(a) for a in (self.run, self.orbit, self.bx)]
        return ak.Array(ak.contents.RecordArray([*columns, lists], BX_FIELDS))

    @classmethod
    def concatenate(cls, blocks: list[_Block]) -> _Block:
        shifts = np.cumsum([0] + [b.offsets[-1] for b in blocks[:-1]])
        tails = [b.offsets[1:] + k for b, k in zip(blocks, shifts, strict=True)]
        offsets = np.concatenate([blocks[0].offsets[:1], *tails])
        columns = [np.concatenate([getattr(b, name) for b in blocks]) for name in ("run", "orbit", "bx")]
        muons = {name: np.concatenate([b.muons[name] for b in blocks]) for name in MUON_FIELDS}
        return cls(*columns, offsets, muons)


def _float(table: np.ndarray, hw: np.ndarray, bits: int) -> np.ndarray:
    out = np.empty(hw.size, np.float32)
    _lookup(table, hw, (1 << bits) - 1, out)
    return out


def _muon_fields(f, s, extra, slot, era: str) -> dict[str, np.ndarray]:
    """Decode raw words into the muon fields of the layout (hardware via gmt.decode, floats via tables)."""
    dec = gmt.decode(f, s, era, spare=extra if era == "run3" else None)
    out = {name: dec.get(name) for name in HW_FIELDS}
    if era == "run2":
        out["hwPtUnconstrained"] = np.zeros(f.size, np.int16)
        out["hwDXY"] = np.zeros(f.size, np.int16)
    out["slot"] = slot
    out["pt"] = _float(_PT_LUT, dec["hwPt"], 9)
    out["eta"] = _float(_ETA_LUT, dec["hwEta"], 9)
    out["etaAtVtx"] = _float(_ETA_LUT, dec["hwEtaAtVtx"], 9)
    out["phi"] = _float(_PHI_LUT, dec["hwPhi"], 10)
    out["phiAtVtx"] = _float(_PHI_LUT, dec["hwPhiAtVtx"], 10)
    return out


def _records(words, starts, n_a, n_b, run, era: str, rule: int, stats: _Stats) -> _Block:
    """Gather the muon words of the given records, drop muons by ``rule``, decode, and build the layout."""
    n_rec = starts.size
    n_raw = int(n_a.sum(dtype=np.int64) + n_b.sum(dtype=np.int64))
    bx, orbit = np.empty(n_rec, np.uint32), np.empty(n_rec, np.uint32)
    offsets = np.empty(n_rec + 1, np.int64)
    f, s, extra = (np.empty(n_raw, np.uint32) for _ in range(3))
    slot = np.empty(n_raw, np.int8)
    stride = 2 if era == "run2" else 3
    kept, bit27 = _gather(words, starts, n_a, n_b, stride, rule, bx, orbit, offsets, f, s, extra, slot)
    stats.n_raw_muons += n_raw
    stats.n_bit27 += int(bit27)
    if era == "run2":
        bx &= np.uint32(0xFFFF)
    else:
        orbit &= np.uint32(0x7FFFFFFF)
    muons = _muon_fields(f[:kept], s[:kept], extra[:kept], slot[:kept], era)
    return _Block(run, orbit, bx, offsets, muons)


def _empty() -> _Block:
    zero = np.zeros(0, np.uint32)
    muons = _muon_fields(zero, zero, zero, np.zeros(0, np.int8), "run3")
    return _Block(zero, zero, zero, np.zeros(1, np.int64), muons)


# ----------------------------------------------------------------------------------------------------------
# streaming


def _is_bz2(path: Path) -> bool:
    """bz2 is recognised by its magic, whatever the file name says."""
    with open(path, "rb") as raw:
        magic = raw.read(4)
    return magic[:3] == b"BZh" and magic[3:4].isdigit()


@contextlib.contextmanager
def _open(path: Path) -> Iterator[BinaryIO]:
    """Open a raw file, decompressing bz2 on the fly."""
    if _is_bz2(path):
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


def _read(stream: BinaryIO, n: int, path: Path, offset: int) -> bytes:
    buf = bytearray(n)
    return bytes(buf[: _fill(stream, memoryview(buf), path, offset)])


# parse(view, base offset, at end of file) -> (bytes consumed, bytes the next unit needs, array or None)
_Parser = Callable[[memoryview, int, bool], tuple[int, int, "_Block | None"]]


def _stream(stream: BinaryIO, path: Path, base: int, chunk_bytes: int, parse: _Parser) -> Iterator[_Block]:
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


def run_from_name(path) -> int:
    """Run number of a Run-2 file ``<prefix>_<run>_<index>.dat[.bz2]``; 0 when the name has another form."""
    match = _RUN2_NAME.match(Path(path).name)
    return int(match.group(1)) if match else 0


def _run2_chunks(stream, path: Path, chunk_bytes: int, drop_intermediate: bool, stats: _Stats):
    run = run_from_name(path)
    rule = _DROP_RUN2 if drop_intermediate else _KEEP_ALL

    def parse(buf: memoryview, base: int, eof: bool):
        if base == 0:
            _run2_check_start(path, buf, eof)
        words = np.frombuffer(buf, dtype="<u4", count=len(buf) // 4)
        starts = np.empty(words.size // 3 + 1, np.int64)
        n_a, n_b = np.empty(starts.size, np.uint8), np.empty(starts.size, np.uint8)
        k, end, need = _scan_run2(words, starts, n_a, n_b)
        consumed = 4 * end
        if eof and consumed < len(buf):
            _run2_truncated(path, words, end, len(buf) - consumed, base + consumed)
        if not k:
            return consumed, 4 * need, None
        chunk = _records(words, starts[:k], n_a[:k], n_b[:k], np.full(k, run, np.uint32), "run2", rule, stats)
        stats.count_orbits(chunk.orbit)
        return consumed, 4 * need, chunk

    yield from _stream(stream, path, 0, chunk_bytes, parse)


def _run2_check_start(path: Path, buf: memoryview, eof: bool) -> None:
    if eof and not len(buf):
        raise FormatError(path, "empty file", offset=0)
    if bytes(buf[:4]) == _RAW_MAGIC:
        raise FormatError(path, "this is a Run-3 RAW_ container, not a Run-2 scouting stream", offset=0)


def _run2_truncated(path: Path, words: np.ndarray, end: int, left: int, offset: int):
    if left < 12:
        raise FormatError(path, f"truncated BX record header: only {left} bytes left", offset=offset)
    header = int(words[end])
    n_a, n_b = (header >> 16) & 0xF, header & 0xF
    size = 12 + 8 * (n_a + n_b)
    raise FormatError(
        path, f"truncated BX record: mA={n_a}, mB={n_b} need {size} bytes, only {left} left", offset=offset
    )


def _run3_header(stream, path: Path) -> dict:
    """Parse the RAW_ file header (v2, 32 bytes; v1, 24 bytes)."""
    head = _read(stream, 8, path, 0)
    if not head:
        raise FormatError(path, "empty file", offset=0)
    if head[:4] != _RAW_MAGIC:
        what = f"not a Run-3 scouting file: magic {head[:4]!r}, expected {_RAW_MAGIC!r}"
        raise FormatError(path, what, offset=0)
    version = head[4:8]
    if version == b"0002":
        rest = _read(stream, 24, path, 8)
        if len(rest) < 24:
            raise FormatError(path, f"truncated RAW_0002 file header ({8 + len(rest)} of 32 bytes)", offset=0)
        size, data_type, n_events, run, lumi, file_size = struct.unpack("<HHIIIQ", rest)
    elif version == b"0001":
        rest = _read(stream, 16, path, 8)
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
    if len(_read(stream, size - minimum, path, minimum)) < size - minimum:
        raise FormatError(path, f"truncated file header of {size} bytes", offset=0)
    return {
        "version": version.decode(), "header_size": size, "data_type": data_type, "n_events": n_events,
        "run": run, "lumi": lumi, "file_size": file_size,
    }  # fmt: skip


_RUN3_ERRORS = {
    _BAD_VERSION: "unknown FRD event header version {version} (expected 3, 4, 5 or 6)",
    _BAD_ALIGN: "FRD event size or padding is not a multiple of 4 bytes",
    _SHORT_PAYLOAD: "FRD event payload shorter than its 4-byte source id",
    _BX_HEADER_OVERRUN: "BX record header runs past the end of its FRD event payload",
    _BX_OVERRUN: "BX record with mA={a}, mB={b} muons runs past the end of its FRD event payload",
}


def _run3_error(path: Path, status: int, words: np.ndarray, pos: int, offset: int):
    header = int(words[pos])
    what = _RUN3_ERRORS[status].format(version=header & 0xFFFF, a=(header >> 16) & 0xF, b=header & 0xF)
    raise FormatError(path, what, offset=offset)


def _run3_truncated(path: Path, tail: np.ndarray, left: int, offset: int):
    """Explain why the last, incomplete FRD event of a file cannot be read."""
    hdr = _FRD_HEADER_WORDS.get(int(tail[0]) & 0xFFFF, 6) if tail.size else 6
    if left < 4 * hdr:
        raise FormatError(path, f"truncated FRD event header: only {left} bytes left", offset=offset)
    size = int(tail[hdr - 2] if hdr == 6 else tail[hdr - 3])
    what = f"FRD eventSize {size} overruns the file: only {left - 4 * hdr} bytes follow the event header"
    raise FormatError(path, what, offset=offset)


def _run3_chunks(stream, path: Path, chunk_bytes: int, stats: _Stats):
    header = stats.header = _run3_header(stream, path)

    def parse(buf: memoryview, base: int, eof: bool):
        words = np.frombuffer(buf, dtype="<u4", count=len(buf) // 4)
        ev_pos = np.empty(words.size // 6 + 1, np.int64)
        ev_src = np.empty(ev_pos.size, np.uint32)
        rec_start = np.empty(words.size // 3 + 1, np.int64)
        rec_a, rec_b = np.empty(rec_start.size, np.uint8), np.empty(rec_start.size, np.uint8)
        rec_event = np.empty(rec_start.size, np.int64)
        status, pos, ne, nr, need = _scan_run3(words, ev_pos, ev_src, rec_start, rec_a, rec_b, rec_event)
        if status not in (_OK, _INCOMPLETE):
            _run3_error(path, status, words, pos, base + 4 * pos)
        consumed = 4 * pos
        if eof and consumed < len(buf):
            _run3_truncated(path, words[pos:], len(buf) - consumed, base + consumed)
        gmt_events = ev_src[:ne] == _GMT_SOURCE_ID
        stats.n_orbits += int(np.count_nonzero(gmt_events))
        stats.skipped_sources.update(ev_src[:ne][~gmt_events].tolist())
        if not nr:
            return consumed, 4 * need, None
        run = words[ev_pos[rec_event[:nr]] + 1]
        chunk = _records(words, rec_start[:nr], rec_a[:nr], rec_b[:nr], run, "run3", _DROP_RUN3, stats)
        return consumed, 4 * need, chunk

    yield from _stream(stream, path, header["header_size"], chunk_bytes, parse)
    end = stream.tell()
    if header["file_size"] and end != header["file_size"]:
        raise FormatError(path, f"file header says {header['file_size']} bytes, file has {end}", offset=end)


# ----------------------------------------------------------------------------------------------------------
# public reading API


def _fmt(path: Path, fmt: str | None) -> str:
    if fmt is None:
        return detect_format(path)
    try:
        return _FMT_ALIASES[fmt]
    except KeyError:
        raise ValueError(f"unknown scouting format {fmt!r}; allowed: {', '.join(_FMT_ALIASES)}") from None


def detect_format(path) -> str:
    """``"scouting-run3"`` for a ``RAW_`` container, ``"scouting-run2"`` for a consistent BX-record stream.

    The Run-2 check walks the record headers in the first 64 KiB: each needs muon counts ≤ 8 with zero bits
    between the count fields, and the first record must fit in the file (a later one that does not is left
    to the reader, which reports the truncation). Anything else is a FormatError naming the file.
    """
    path = Path(path)
    with _open(path) as stream:
        head = _read(stream, 1 << 16, path, 0)
    if not head:
        raise FormatError(path, "empty file", offset=0)
    if head[:4] == _RAW_MAGIC:
        return "scouting-run3"
    bad = _run2_inconsistency(head)
    if bad is not None:
        offset, reason = bad
        what = f"neither a Run-3 RAW_ container nor a Run-2 scouting stream: {reason}"
        raise FormatError(path, what, offset=offset)
    return "scouting-run2"


def _run2_inconsistency(head: bytes) -> tuple[int, str] | None:
    """(offset, reason) of the first bytes in ``head`` that cannot be a Run-2 BX record, or None."""
    words = np.frombuffer(head, dtype="<u4", count=len(head) // 4)
    if words.size < 3:
        return 0, f"{len(head)} bytes are too short for a BX record"
    pos = 0
    while pos + 3 <= words.size:
        header = int(words[pos])
        n_a, n_b = (header >> 16) & 0xFF, header & 0xFF
        if n_a > _MAX_LINKS or n_b > _MAX_LINKS:
            return 4 * pos, f"BX record header 0x{header:08x} has muon counts {n_a}+{n_b} > {_MAX_LINKS}"
        if pos == 0 and 3 + 2 * (n_a + n_b) > words.size and len(head) < 1 << 16:
            return 0, f"the first BX record ({12 + 8 * (n_a + n_b)} bytes) is longer than the file"
        pos += 3 + 2 * (n_a + n_b)
    return None


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
    stats = _Stats()
    for block in _chunks(path, fmt, chunk_bytes, drop_intermediate, stats):
        yield block.array()
    _warn(path, fmt, stats)


def _chunks(path: Path, fmt: str, chunk_bytes: int, drop_intermediate: bool, stats: _Stats):
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    with _open(path) as stream:
        if fmt == "scouting-run2":
            yield from _run2_chunks(stream, path, chunk_bytes, drop_intermediate, stats)
        else:
            yield from _run3_chunks(stream, path, chunk_bytes, stats)


def read(
    path, fmt: str | None = None, chunk_bytes: int | None = None, *, drop_intermediate: bool = True
) -> ak.Array:
    """The whole file as one array of BX records: the concatenation of :func:`iterate`, with its warnings.

    By default an uncompressed file is read as one block: the result is about 3.6 times the file size, so
    concatenating chunks would need more memory (and time) than holding the raw file once. Compressed files
    are read in :data:`DEFAULT_CHUNK_BYTES` blocks.
    """
    path = Path(path)
    fmt = _fmt(path, fmt)
    if chunk_bytes is None:
        chunk_bytes = DEFAULT_CHUNK_BYTES if _is_bz2(path) else path.stat().st_size + 1
    stats = _Stats()
    blocks = list(_chunks(path, fmt, chunk_bytes, drop_intermediate, stats))
    _warn(path, fmt, stats)
    if not blocks:
        return _empty().array()
    return (blocks[0] if len(blocks) == 1 else _Block.concatenate(blocks)).array()


def _warn(path: Path, fmt: str, stats: _Stats) -> None:
    for category, message in _diagnose(path, fmt, stats):
        warnings.warn(message, category, stacklevel=3)


def _bit27_fraction(stats: _Stats) -> float | None:
    return stats.n_bit27 / stats.n_raw_muons if stats.n_raw_muons else None


def _diagnose(path: Path, fmt: str, stats: _Stats) -> list[tuple[type[Warning], str]]:
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


def summarize(
    path, fmt: str | None = None, *, n_first: int = 3, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> dict:
    """Stream the file once and report what ``l1refit inspect`` prints.

    Keys: ``path, format, era, run, n_orbits, n_bx, n_muons`` (after the drop rules), ``n_muons_raw``,
    ``bit27_fraction`` (over raw muons; Run-2 only, else None), ``header`` (the Run-3 file header, else None),
    ``first`` (the first ``n_first`` BX records as Python dicts) and ``warnings`` (the messages
    :func:`iterate` would emit). Run-2 orbits are counted as changes of the orbit number along the stream.
    """
    path = Path(path)
    fmt = _fmt(path, fmt)
    stats = _Stats()
    n_bx = n_muons = 0
    first: list = []
    for chunk in _chunks(path, fmt, chunk_bytes, True, stats):
        n_bx += len(chunk)
        n_muons += int(chunk.offsets[-1])
        if len(first) < n_first:
            first.extend(chunk.array()[: n_first - len(first)].to_list())
    era = fmt.removeprefix("scouting-")
    run = first[0]["run"] if first else run_from_name(path) if era == "run2" else stats.header["run"]
    return {
        "path": str(path), "format": fmt, "era": era, "run": run, "n_orbits": stats.n_orbits, "n_bx": n_bx,
        "n_muons": n_muons, "n_muons_raw": stats.n_raw_muons,
        "bit27_fraction": _bit27_fraction(stats) if era == "run2" else None,
        "header": stats.header, "first": first, "warnings": [msg for _, msg in _diagnose(path, fmt, stats)],
    }  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# writers


@dataclass
class _Flat:
    """BX records as flat NumPy arrays, the muons of each record ordered slot 1 first."""

    orbit: np.ndarray
    bx: np.ndarray
    n_a: np.ndarray
    n_b: np.ndarray
    fields: dict[str, np.ndarray]
    slot: np.ndarray


def _flatten(bx_records, max_per_slot: int) -> _Flat:
    arr = ak.Array(bx_records)
    missing = [name for name in ("orbit", "bx", "muons") if name not in arr.fields]
    if not missing:
        missing = [name for name in (*HW_FIELDS, "slot") if name not in arr.muons.fields]
    if missing:
        raise ValueError(f"bx_records lack the field(s) {', '.join(missing)} of the scouting layout")
    counts = ak.to_numpy(ak.num(arr.muons)).astype(np.int64)
    flat = ak.flatten(arr.muons)
    slot = ak.to_numpy(flat.slot).astype(np.int8)
    if slot.size and not np.all((slot == 1) | (slot == 2)):
        raise ValueError("muon slot must be 1 or 2")
    rec = np.repeat(np.arange(counts.size), counts)
    order = np.argsort(2 * rec + slot, kind="stable")
    n_b = np.bincount(rec[slot == 2], minlength=counts.size)
    n_a = counts - n_b
    if counts.size and max(n_a.max(), n_b.max()) > max_per_slot:
        raise ValueError(f"a BX record holds more than {max_per_slot} muons of one slot")
    fields = {name: ak.to_numpy(flat[name])[order] for name in HW_FIELDS}
    return _Flat(_uint32(arr.orbit, "orbit"), _uint32(arr.bx, "bx"), n_a, n_b, fields, slot[order])


def _uint32(values, name: str) -> np.ndarray:
    v = ak.to_numpy(values).astype(np.int64)
    if v.size and (v.min() < 0 or v.max() > 0xFFFFFFFF):
        raise ValueError(f"{name} must fit in 32 bits")
    return v.astype(np.uint32)


_MATCH_ALL = np.uint32(0xFF << 24 | 0xFF << 8)  # bxmatch, orbitmatch: every link agrees with link 0


def _pack_records(flat: _Flat, starts: np.ndarray, stride: int, words: np.ndarray, frames) -> None:
    """Put the BX record headers at word ``starts`` of ``words`` and the muons' frames after them."""
    words[starts] = (flat.n_a.astype(np.uint32) << 16) | flat.n_b.astype(np.uint32) | _MATCH_ALL
    words[starts + 1] = flat.bx
    words[starts + 2] = flat.orbit
    total = flat.n_a + flat.n_b
    first = np.cumsum(total) - total
    idx = np.repeat(starts + 3 - stride * first, total) + stride * np.arange(int(total.sum()))
    for k, frame in enumerate(frames):
        words[idx + k] = frame


def _write_words(path, words: np.ndarray) -> None:
    """Write little-endian words atomically, bz2-compressed when the name ends in ``.bz2``."""
    data = memoryview(words.astype("<u4", copy=False)).cast("B")
    opener = bz2.open if str(path).endswith(".bz2") else open
    with atomic_path(path) as tmp, opener(tmp, "wb") as out:
        out.write(data)


def write_run2(path, bx_records) -> None:
    """Write BX records as a Run-2 demonstrator stream (``.bz2`` suffix: compressed).

    The run number has no place in the file (name it ``scout_<run:06d>_<index:06d>.dat``); bx must fit in 16
    bits; hwPtUnconstrained, hwDXY and the floats are ignored. bxmatch and orbitmatch are written as 0xFF.
    At least one record is needed: a Run-2 stream without records is an empty file, which readers reject.
    """
    flat = _flatten(bx_records, _MAX_LINKS)
    if not flat.bx.size:
        raise ValueError("no BX records: a Run-2 stream without records would be an empty file")
    if flat.bx.size and flat.bx.max() > 0xFFFF:
        raise ValueError("Run-2 bx must fit in 16 bits (readers mask it with 0xFFFF)")
    lsw, msw = gmt.encode(flat.fields, "run2")
    total = flat.n_a + flat.n_b
    starts = 3 * np.arange(total.size) + 2 * (np.cumsum(total) - total)
    words = np.empty(3 * total.size + 2 * int(total.sum()), np.uint32)
    _pack_records(flat, starts, 2, words, (lsw, msw))
    _write_words(path, words)


def write_run3(path, bx_records, *, run: int, lumi: int, data_type: int = 0, flags: int = 0) -> None:
    """Write BX records as a Run-3 ``RAW_0002`` file: one FRD V6 event (source id 1) per run of equal orbits.

    Consecutive records with the same orbit form one event, so the reader returns them in the same order.
    Every event gets ``run`` and ``lumi`` (the records' own ``run`` is not stored); ``data_type`` goes into
    the file header (the Run-3 value is unknown, FORMATS §8) and the crc32c is written as 0. Muons with
    hwPt == 0 or hwQual == 0 are refused because readers drop them; orbit must fit in 31 bits (readers mask
    bit 31).
    """
    flat = _flatten(bx_records, 0xF)
    if flat.orbit.size and flat.orbit.max() > 0x7FFFFFFF:
        raise ValueError("Run-3 orbit must fit in 31 bits (readers mask it with 0x7FFFFFFF)")
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
        "<4s4sHHIIIQ", _RAW_MAGIC, b"0002", 32, data_type, first_rec.size, run, lumi, 4 * words.size
    )
    words[:8] = np.frombuffer(file_header, "<u4")
    event_header = (_FRD_VERSION | flags << 16, run, lumi, flat.orbit[first_rec], payload, 0, _GMT_SOURCE_ID)
    for k, value in enumerate(event_header):
        words[ev_start + k] = value
    _pack_records(flat, starts, 3, words, (lsw, msw, extra))
    _write_words(path, words)
