"""The 64-bit uGMT output muon word (docs/formats.md §2.1–2.2), decoded and encoded vectorised over uint32 frames.

Layout (bit 0 = LSB). LSW, every era: hwPhiAtVtx 0–9, hwPt 10–18, hwQual 19–22, hwEtaAtVtx 23–31 (9-bit two's
complement). MSW: hwIso 0–1, charge sign 2 (1 = negative), charge valid 3, tfMuonIndex 4–10, hwPhi 11–20, then

* ``run2`` (2017–2018): hwEta 21–29 (9-bit two's complement), 30–31 unused;
* ``run3``: hwPtUnconstrained 21–28, the muon-shower bit 29 (masked here: it is not a muon property), hwDXY 30–31;
  the muon-system η travels in the link's spare frame: bits 13–21 for the muon in slot 1, 22–30 for slot 2
  (12–20 / 21–29 for the November-2020 MWGR firmware, ``mwgr2020=True``). In the Run-3 scouting ``extra`` word
  bit 0 says which slot the muon came from (0 → slot 1, 1 → slot 2); that is the default way to find the slot.

Sign extension of the 9-bit η fields is done by shifting the field to the top of a 32-bit word and shifting it
back arithmetically, one vectorised operation per field.
"""

from __future__ import annotations

import numpy as np

ERAS = ("run2", "run3")

# field -> (frame, shift, width); frame "lsw" or "msw"
_UNSIGNED_FIELDS = {
    "hwPhiAtVtx": ("lsw", 0, 10),
    "hwPt": ("lsw", 10, 9),
    "hwQual": ("lsw", 19, 4),
    "hwIso": ("msw", 0, 2),
    "tfMuonIndex": ("msw", 4, 7),
    "hwPhi": ("msw", 11, 10),
}
_RUN3_FIELDS = {
    "hwPtUnconstrained": ("msw", 21, 8),
    "hwDXY": ("msw", 30, 2),
}
_SIGN_SHIFT, _VALID_SHIFT = 2, 3
SHOWER_BIT = 29  # MSW bit of the Run-3 muon-shower flag

_SPARE_ETA_SHIFT = {False: {1: 13, 2: 22}, True: {1: 12, 2: 21}}  # keyed by mwgr2020, then slot


def _u32(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype != np.uint32:
        if arr.size and (np.any(arr < 0) or np.any(arr > 0xFFFFFFFF)):
            raise ValueError(f"{name}: frame values must fit in uint32")
        arr = arr.astype(np.uint32)
    return arr


_BLOCK = 1 << 16  # muons per block: every temporary stays in L2 cache, which is 10x faster than whole-array ops


def _extract_into(dst: np.ndarray, frame: np.ndarray, shift: int, width: int, tmp: np.ndarray) -> None:
    """dst = (frame >> shift) & mask, skipping the shift for bit 0 and the mask for a field at the top."""
    src = frame
    if shift:
        np.right_shift(src, np.uint32(shift), out=tmp)
        src = tmp
    if shift + width < 32:
        np.bitwise_and(src, np.uint32((1 << width) - 1), out=tmp)
        src = tmp
    dst[...] = src


def _signed9_into(dst: np.ndarray, frame: np.ndarray, shift: int, tmp: np.ndarray) -> None:
    """Sign-extend the 9-bit two's-complement field at ``shift``: move it to the top, shift back arithmetically."""
    np.left_shift(frame, np.uint32(32 - 9 - shift), out=tmp)
    np.right_shift(tmp.view(np.int32), 23, out=tmp.view(np.int32))
    dst[...] = tmp.view(np.int32)


def _slot_bits(spare: np.ndarray, slot) -> np.ndarray:
    """0 for a slot-1 muon, 1 for slot 2, as uint32: from ``slot`` if given, else from bit 0 of ``spare``."""
    if slot is None:
        return spare & np.uint32(1)
    slot = np.broadcast_to(np.asarray(slot), spare.shape)
    if slot.size and not np.all((slot == 1) | (slot == 2)):
        raise ValueError("slot must be 1 or 2 for every muon")
    return (slot == 2).astype(np.uint32)


def decode(lsw, msw, era: str, spare=None, *, slot=None, mwgr2020: bool = False) -> dict[str, np.ndarray]:
    """Decode uGMT muon words into hardware fields.

    Parameters
    ----------
    lsw, msw : uint32 arrays of the same shape — bits 0–31 and 32–63 of each word.
    era : "run2" (2017–2018 layout) or "run3".
    spare : uint32 array, run3 only (required there): the spare frame or scouting ``extra`` word carrying the
        muon-system η.
    slot : 1, 2 or an array of them: the slot whose η field of ``spare`` belongs to each muon; by default
        ``spare`` bit 0 tells (the scouting ``extra`` convention).
    mwgr2020 : the η fields of the spare frame are shifted down by one bit (uGMT firmware 0x6000001).

    Returns a dict of int16 arrays ``hwPt, hwQual, hwEta, hwPhi, hwEtaAtVtx, hwPhiAtVtx, hwIso, tfMuonIndex``,
    ``chargeValid`` (bool), ``charge`` (int8: +1, −1, 0 when not valid), ``hwSign`` (the raw sign bit, kept so
    that ``encode`` reproduces words whose charge is not valid), and for run3 ``hwPtUnconstrained, hwDXY``.
    """
    if era not in ERAS:
        raise ValueError(f"unknown era {era!r}; allowed: {', '.join(ERAS)}")
    lsw = _u32(lsw, "lsw")
    msw = _u32(msw, "msw")
    if lsw.shape != msw.shape:
        raise ValueError(f"lsw and msw shapes differ: {lsw.shape} vs {msw.shape}")
    shape = lsw.shape
    lsw, msw = lsw.reshape(-1), msw.reshape(-1)
    if era == "run3":
        if spare is None:
            raise ValueError("run3 words need the spare frame: the muon-system eta is not in the 64-bit word")
        spare = _u32(spare, "spare")
        if spare.shape != shape:
            raise ValueError(f"spare shape {spare.shape} differs from the words' {shape}")
        spare = spare.reshape(-1)
        slot_bits = _slot_bits(spare, None if slot is None else np.broadcast_to(slot, shape).reshape(-1))
        # left shift that brings the muon's 9-bit eta field to the top: s1 -> 23 - s1, s2 -> 23 - s2
        shift1, shift2 = _SPARE_ETA_SHIFT[bool(mwgr2020)].values()
        lshift_buf = np.empty(min(n := lsw.size, _BLOCK), np.uint32)
    fields = dict(_UNSIGNED_FIELDS)
    if era == "run3":
        fields.update(_RUN3_FIELDS)
    n = lsw.size
    out = {name: np.empty(n, np.int16) for name in (*fields, "hwEtaAtVtx", "hwEta")}
    out["hwSign"] = np.empty(n, np.int8)
    out["chargeValid"] = np.empty(n, bool)
    out["charge"] = np.empty(n, np.int8)
    tmp_buf = np.empty(min(n, _BLOCK), np.uint32)
    for start in range(0, n, _BLOCK):
        sl = slice(start, min(start + _BLOCK, n))
        frames = {"lsw": lsw[sl], "msw": msw[sl]}
        tmp = tmp_buf[: sl.stop - start]
        for name, (frame, shift, width) in fields.items():
            _extract_into(out[name][sl], frames[frame], shift, width, tmp)
        # sign and valid bits together (valid << 1 | sign); charge = valid * (1 - 2 * sign), in int8
        _extract_into(tmp, frames["msw"], _SIGN_SHIFT, 2, tmp)
        sign, charge = out["hwSign"][sl], out["charge"][sl]
        np.bitwise_and(tmp, np.uint32(1), out=sign, casting="unsafe")
        np.right_shift(tmp, np.uint32(1), out=out["chargeValid"][sl], casting="unsafe")
        np.multiply(sign, np.int8(-2), out=charge)
        np.add(charge, np.int8(1), out=charge)
        np.multiply(charge, out["chargeValid"][sl], out=charge, casting="unsafe")
        _signed9_into(out["hwEtaAtVtx"][sl], frames["lsw"], 23, tmp)
        if era == "run2":
            _signed9_into(out["hwEta"][sl], frames["msw"], 21, tmp)
        else:
            lshift = lshift_buf[: sl.stop - start]
            np.multiply(slot_bits[sl], np.uint32(shift2 - shift1), out=lshift)
            np.subtract(np.uint32(23 - shift1), lshift, out=lshift)
            np.left_shift(spare[sl], lshift, out=tmp)
            np.right_shift(tmp.view(np.int32), 23, out=tmp.view(np.int32))
            out["hwEta"][sl] = tmp.view(np.int32)
    return {k: v.reshape(shape) for k, v in out.items()}


def _put(values, name: str, width: int, *, signed: bool = False) -> np.ndarray:
    v = np.asarray(values).astype(np.int64)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if v.size and (v.min() < lo or v.max() > hi):
        bad = v[(v < lo) | (v > hi)][0]
        raise ValueError(f"{name}={bad} does not fit its {width}-bit field (allowed {lo}..{hi})")
    return (v & ((1 << width) - 1)).astype(np.uint32)


def encode(fields: dict, era: str, *, slot=1, mwgr2020: bool = False, shower=None):
    """Pack hardware fields into uGMT words: the exact inverse of :func:`decode`.

    ``fields`` holds the keys :func:`decode` returns (``hwSign`` and ``chargeValid`` optional: they are derived
    from ``charge`` when absent; a charge of 0 means "not valid"). Returns ``(lsw, msw)`` for run2 and
    ``(lsw, msw, spare)`` for run3, where ``spare`` carries the muon-system η in the field of ``slot`` and the slot
    flag in bit 0 (scouting ``extra`` convention). ``shower`` (run3) sets the muon-shower bit. Values outside their
    bit field raise ``ValueError`` naming the field.
    """
    if era not in ERAS:
        raise ValueError(f"unknown era {era!r}; allowed: {', '.join(ERAS)}")
    charge = np.asarray(fields["charge"]).astype(np.int8)
    if charge.size and not np.all(np.isin(charge, (-1, 0, 1))):
        raise ValueError("charge must be +1, -1 or 0 (not valid)")
    valid = np.asarray(fields["chargeValid"]).astype(bool) if "chargeValid" in fields else charge != 0
    sign = np.asarray(fields["hwSign"]) if "hwSign" in fields else (charge < 0)
    sign = np.where(valid, charge < 0, sign)  # a valid charge decides the sign bit

    lsw = (
        _put(fields["hwPhiAtVtx"], "hwPhiAtVtx", 10)
        | _put(fields["hwPt"], "hwPt", 9) << np.uint32(10)
        | _put(fields["hwQual"], "hwQual", 4) << np.uint32(19)
        | _put(fields["hwEtaAtVtx"], "hwEtaAtVtx", 9, signed=True) << np.uint32(23)
    )
    msw = (
        _put(fields["hwIso"], "hwIso", 2)
        | _put(sign, "hwSign", 1) << np.uint32(_SIGN_SHIFT)
        | _put(valid, "chargeValid", 1) << np.uint32(_VALID_SHIFT)
        | _put(fields["tfMuonIndex"], "tfMuonIndex", 7) << np.uint32(4)
        | _put(fields["hwPhi"], "hwPhi", 10) << np.uint32(11)
    )
    if era == "run2":
        msw |= _put(fields["hwEta"], "hwEta", 9, signed=True) << np.uint32(21)
        return lsw, msw
    msw |= _put(fields["hwPtUnconstrained"], "hwPtUnconstrained", 8) << np.uint32(21)
    msw |= _put(fields["hwDXY"], "hwDXY", 2) << np.uint32(30)
    if shower is not None:
        msw |= _put(shower, "shower", 1) << np.uint32(SHOWER_BIT)
    slots = np.broadcast_to(np.asarray(slot, dtype=np.int8), lsw.shape)
    if slots.size and not np.all((slots == 1) | (slots == 2)):
        raise ValueError("slot must be 1 or 2 for every muon")
    shifts = _SPARE_ETA_SHIFT[bool(mwgr2020)]
    eta = _put(fields["hwEta"], "hwEta", 9, signed=True)
    spare = np.where(slots == 1, eta << np.uint32(shifts[1]), eta << np.uint32(shifts[2])).astype(np.uint32)
    spare |= (slots == 2).astype(np.uint32)
    return lsw, msw, spare
