"""BX records as flat NumPy arrays, and their awkward layout: the muon words gathered, decoded and converted.

Both eras end here: the era readers find the records, :func:`build_block` gathers their muon words, applies the
CMSSW drop rule and decodes them (docs/formats.md §2.1, §2.2, §3).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import awkward as ak
import numba
import numpy as np

from l1refit import scales
from l1refit.formats import gmt

HW_FIELDS = (
    "hwPt", "hwQual", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "chargeValid", "hwIso",
    "tfMuonIndex", "hwPtUnconstrained", "hwDXY",
)  # fmt: skip
FLOAT_FIELDS = ("pt", "eta", "phi", "etaAtVtx", "phiAtVtx")
MUON_FIELDS = (*HW_FIELDS, "slot", *FLOAT_FIELDS)
BX_FIELDS = ("run", "orbit", "bx", "muons")

KEEP_ALL, DROP_RUN2, DROP_RUN3 = range(3)  # which muons build_block drops

# Limits both eras' producers guarantee (docs/formats.md §3.1, §3.3); the readers check every record against them.
MAX_PER_SLOT = 8  # muons per slot in a BX record: one per scouting input link; the 8-bit count fields hold 0..8
LAST_BX = 3564  # the largest BX number: CMSSW indexes a 3565-entry orbit buffer with the Run-3 bx

# Float conversions as look-up tables over every bit pattern of the field: a gather is much faster than the
# float32 formulas and gives the same numbers, because the scales functions are element-wise. The η table is
# indexed by the 9-bit two's-complement pattern (hwEta & 511).
_PT_LUT = scales.hw_to_pt(np.arange(1 << 9), convention="scouting").astype(np.float32)
_ETA_LUT = scales.hw_to_eta((np.arange(1 << 9) ^ 256) - 256, convention="scouting").astype(np.float32)
_PHI_LUT = scales.hw_to_phi(np.arange(1 << 10), convention="scouting").astype(np.float32)


# compiled kernels: gathering the muon words record by record avoids five full-size index temporaries


@numba.njit(cache=True, nogil=True)
def _gather(words, starts, n_a, n_b, stride, rule, bx, orbit, offsets, f, s, extra, slot):
    """Copy bx, orbit and the muon words of each record into flat arrays, dropping muons by ``rule``.

    The drop rules test raw bits (docs/formats.md §2.1/§2.2): Run-2 intermediate = tfMuonIndex (s 4-10) == 0
    and hwEtaAtVtx (f 23-31) == 0; Run-3 = extra bit 31, or hwPt (f 10-18) == 0, or hwQual (f 19-22) == 0. The
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
            if rule == DROP_RUN2 and (sw >> 4) & 0x7F == 0 and fw >> 23 == 0:
                continue
            if rule == DROP_RUN3 and (xw >> 31 != 0 or (fw >> 10) & 0x1FF == 0 or (fw >> 19) & 0xF == 0):
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


@dataclass
class Stats:
    """Per-file counters gathered while streaming, for the warnings and the file summary."""

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
class Block:
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
    def concatenate(cls, blocks: list[Block]) -> Block:
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


def build_block(words, starts, n_a, n_b, run, era: str, rule: int, stats: Stats) -> Block:
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
    return Block(run, orbit, bx, offsets, muons)


def empty_block() -> Block:
    zero = np.zeros(0, np.uint32)
    muons = _muon_fields(zero, zero, zero, np.zeros(0, np.int8), "run3")
    return Block(zero, zero, zero, np.zeros(1, np.int64), muons)
