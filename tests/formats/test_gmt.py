"""64-bit uGMT muon words: property round trips over the full field ranges, and hand-made edge cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from l1refit.formats import gmt

N = st.integers(1, 40)


def _fields(era):
    def arrays(n):
        def ints(lo, hi):
            return hnp.arrays(np.int64, n, elements=st.integers(lo, hi))

        base = {
            "hwPt": ints(0, 511),
            "hwQual": ints(0, 15),
            "hwEta": ints(-256, 255),
            "hwPhi": ints(0, 1023),
            "hwEtaAtVtx": ints(-256, 255),
            "hwPhiAtVtx": ints(0, 1023),
            "charge": ints(-1, 1),
            "hwIso": ints(0, 3),
            "tfMuonIndex": ints(0, 127),
        }
        if era == "run3":
            base |= {"hwPtUnconstrained": ints(0, 255), "hwDXY": ints(0, 3), "slot": ints(1, 2)}
        return st.fixed_dictionaries(base)

    return N.flatmap(arrays)


@settings(max_examples=200)
@given(_fields("run2"))
def test_run2_round_trip(fields):
    lsw, msw = gmt.encode(fields, "run2")
    assert lsw.dtype == np.uint32 and msw.dtype == np.uint32
    decoded = gmt.decode(lsw, msw, "run2")
    for key, value in fields.items():
        np.testing.assert_array_equal(decoded[key], value, err_msg=key)
    np.testing.assert_array_equal(decoded["chargeValid"], fields["charge"] != 0)


@settings(max_examples=200)
@given(_fields("run3"), st.booleans(), st.booleans())
def test_run3_round_trip_with_slot_and_shower(fields, shower, mwgr):
    slot = fields.pop("slot")
    shower_bits = np.full(slot.shape, int(shower))
    lsw, msw, spare = gmt.encode(fields, "run3", slot=slot, shower=shower_bits, mwgr2020=mwgr)
    decoded = gmt.decode(lsw, msw, "run3", spare, mwgr2020=mwgr)  # slot read back from spare bit 0
    for key, value in fields.items():
        np.testing.assert_array_equal(decoded[key], value, err_msg=key)
    # the explicit slot argument gives the same answer
    again = gmt.decode(lsw, msw, "run3", spare, slot=slot, mwgr2020=mwgr)
    np.testing.assert_array_equal(again["hwEta"], fields["hwEta"])


@given(hnp.arrays(np.uint32, st.integers(1, 50)), hnp.arrays(np.uint32, 1))
def test_run2_words_round_trip_bit_exact(lsw, msw_seed):
    # every 64-bit pattern of the run2 layout except the two unused top bits decodes and re-encodes exactly
    msw = (lsw ^ msw_seed[0]) & np.uint32(0x3FFFFFFF)
    back = gmt.encode(gmt.decode(lsw, msw, "run2"), "run2")
    np.testing.assert_array_equal(back[0], lsw)
    np.testing.assert_array_equal(back[1], msw)


def _word(**kw):
    """A hand-built 64-bit run2 word from explicit bit positions (independent of the encoder)."""
    lsw = kw.get("phivtx", 0) | kw.get("pt", 0) << 10 | kw.get("qual", 0) << 19 | (kw.get("etavtx", 0) & 0x1FF) << 23
    msw = (
        kw.get("iso", 0)
        | kw.get("sign", 0) << 2
        | kw.get("valid", 0) << 3
        | kw.get("idx", 0) << 4
        | kw.get("phi", 0) << 11
        | (kw.get("eta", 0) & 0x1FF) << 21
    )
    return np.array([lsw], np.uint32), np.array([msw], np.uint32)


def test_edge_eta_extremes_twos_complement():
    d = gmt.decode(*_word(eta=-256, etavtx=255), "run2")
    assert d["hwEta"][0] == -256 and d["hwEtaAtVtx"][0] == 255
    d = gmt.decode(*_word(eta=255, etavtx=-256), "run2")
    assert d["hwEta"][0] == 255 and d["hwEtaAtVtx"][0] == -256
    # -256 is the bit pattern 0x100: only the sign bit (MSW bit 29 / LSW bit 31) set
    lsw, msw = _word(eta=-256, etavtx=-256)
    assert msw[0] == 1 << 29 and lsw[0] == 1 << 31


def test_edge_phi_575_and_empty_muon():
    d = gmt.decode(*_word(phi=575, phivtx=575, pt=0), "run2")
    assert d["hwPhi"][0] == 575 and d["hwPhiAtVtx"][0] == 575
    assert d["hwPt"][0] == 0  # hwPt = 0: empty slot


def test_edge_charge_not_valid_keeps_sign_bit():
    for sign in (0, 1):
        lsw, msw = _word(sign=sign, valid=0, pt=10)
        d = gmt.decode(lsw, msw, "run2")
        assert d["charge"][0] == 0 and not d["chargeValid"][0] and d["hwSign"][0] == sign
        back = gmt.encode(d, "run2")
        assert back[1][0] == msw[0]
    assert gmt.decode(*_word(sign=1, valid=1), "run2")["charge"][0] == -1
    assert gmt.decode(*_word(sign=0, valid=1), "run2")["charge"][0] == 1


def test_edge_run3_shower_bit_is_masked():
    fields = {
        "hwPt": [20], "hwQual": [12], "hwEta": [-100], "hwPhi": [10], "hwEtaAtVtx": [-90], "hwPhiAtVtx": [12],
        "charge": [-1], "hwIso": [0], "tfMuonIndex": [40], "hwPtUnconstrained": [255], "hwDXY": [3],
    }  # fmt: skip
    lsw, msw, spare = gmt.encode(fields, "run3", shower=[1])
    assert msw[0] >> 29 & 1 == 1
    d = gmt.decode(lsw, msw, "run3", spare)
    assert d["hwPtUnconstrained"][0] == 255 and d["hwDXY"][0] == 3
    # the same word without the shower bit decodes identically
    d0 = gmt.decode(lsw, msw & ~np.uint32(1 << 29), "run3", spare)
    for key in d:
        np.testing.assert_array_equal(d[key], d0[key])


def test_run3_spare_frame_slot_fields_by_hand():
    # slot-1 eta in bits 13-21, slot-2 eta in 22-30 (two's complement); bit 0 of the scouting extra word = slot
    spare = np.array([(0x1F0 << 13) | (5 << 22), (0x1F0 << 13) | (5 << 22) | 1], np.uint32)
    zeros = np.zeros(2, np.uint32)
    d = gmt.decode(zeros, zeros, "run3", spare)
    np.testing.assert_array_equal(d["hwEta"], [0x1F0 - 512, 5])
    # MWGR-2020 firmware: fields one bit lower
    d = gmt.decode(zeros, zeros, "run3", spare >> np.uint32(1), slot=[1, 2], mwgr2020=True)
    np.testing.assert_array_equal(d["hwEta"], [0x1F0 - 512, 5])


def test_run3_without_spare_is_an_error():
    with pytest.raises(ValueError, match="spare"):
        gmt.decode(np.zeros(1, np.uint32), np.zeros(1, np.uint32), "run3")


def test_encode_rejects_out_of_range_naming_field():
    fields = {k: [0] for k in ("hwQual", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwIso")}
    fields |= {"hwPt": [512], "tfMuonIndex": [0]}
    with pytest.raises(ValueError, match="hwPt=512"):
        gmt.encode(fields, "run2")
    fields |= {"hwPt": [1], "hwEta": [256]}
    with pytest.raises(ValueError, match="hwEta=256"):
        gmt.encode(fields, "run2")


def test_unknown_era():
    with pytest.raises(ValueError, match="era"):
        gmt.decode(np.zeros(1, np.uint32), np.zeros(1, np.uint32), "run1")


def test_large_arrays_decode_in_blocks_identically():
    rng = np.random.default_rng(7)
    n = 200_003  # more than three internal blocks, not a multiple of the block size
    lsw = rng.integers(0, 2**32, n, dtype=np.uint32)
    msw = rng.integers(0, 2**32, n, dtype=np.uint32)
    spare = rng.integers(0, 2**32, n, dtype=np.uint32)
    d = gmt.decode(lsw, msw, "run3", spare)
    # reference by plain arithmetic
    np.testing.assert_array_equal(d["hwPt"], (lsw >> 10) & 0x1FF)
    eta_vtx = ((lsw >> 23) & 0x1FF).astype(np.int64)
    np.testing.assert_array_equal(d["hwEtaAtVtx"], np.where(eta_vtx > 255, eta_vtx - 512, eta_vtx))
    slot2 = (spare & 1).astype(bool)
    raw = np.where(slot2, (spare >> 22) & 0x1FF, (spare >> 13) & 0x1FF).astype(np.int64)
    np.testing.assert_array_equal(d["hwEta"], np.where(raw > 255, raw - 512, raw))
    np.testing.assert_array_equal(d["hwPtUnconstrained"], (msw >> 21) & 0xFF)
