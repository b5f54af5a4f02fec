"""L1 scouting raw files: hand-built byte strings, round trips, chunking, corrupt inputs, the bit-27 quirk."""

import bz2
import struct
import warnings

import awkward as ak
import numpy as np
import pytest

from l1refit import scales
from l1refit.errors import FormatError
from l1refit.formats import scouting as sc

HW_AND_SLOT = (*sc.HW_FIELDS, "slot")


# ----------------------------------------------------------------------------------------------------------
# builders


def _u9(value: int) -> int:
    return value & 0x1FF


def _f(phi_vtx: int, pt: int, qual: int, eta_vtx: int) -> int:
    return phi_vtx | pt << 10 | qual << 19 | _u9(eta_vtx) << 23


def _s(iso: int, sign: int, valid: int, idx: int, phi: int, high: int = 0) -> int:
    """MSW without bits 21-31; ``high`` holds them (Run-2 eta or Run-3 ptUnconstrained/shower/dxy)."""
    return iso | sign << 2 | valid << 3 | idx << 4 | phi << 11 | high << 21


def _header(n_a: int, n_b: int) -> int:
    return 0xFF << 24 | n_a << 16 | 0xFF << 8 | n_b


def _words(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def _raw_header(n_events: int, run: int, lumi: int, size: int) -> bytes:
    return struct.pack("<4s4sHHIIIQ", b"RAW_", b"0002", 32, 0, n_events, run, lumi, size)


def _frd_event(payload: bytes, *, orbit: int, run: int = 367000, lumi: int = 12, version: int = 6,
               padding: int = 0, flags: int = 0) -> bytes:  # fmt: skip
    size = len(payload)
    if version in (5, 6):
        head = _words(version | flags << 16, run, lumi, orbit, size, 0)
    elif version == 3:
        head = _words(3, run, lumi, orbit, size, padding, 0)
    else:
        head = _words(version, run, lumi, orbit, 0, size, padding, 0)
    return head + payload + b"\xee" * (padding if version in (3, 4) else 0)


def _run3_file(events: list[bytes], run: int = 367000, lumi: int = 12) -> bytes:
    body = b"".join(events)
    return _raw_header(len(events), run, lumi, 32 + len(body)) + body


def _random_records(rng, n: int, era: str) -> ak.Array:
    """BX records over the full range of every field, muons of each record in slot order."""
    counts = rng.integers(0, 5, n)
    m = int(counts.sum())
    lo = 1 if era == "run3" else 0  # Run-3 readers drop hwPt == 0 and hwQual == 0
    muons = {
        "hwPt": rng.integers(lo, 512, m), "hwQual": rng.integers(lo, 16, m),
        "hwEta": rng.integers(-256, 256, m), "hwPhi": rng.integers(0, 1024, m),
        "hwEtaAtVtx": rng.integers(-256, 256, m), "hwPhiAtVtx": rng.integers(0, 1024, m),
        "charge": rng.integers(-1, 2, m), "hwIso": rng.integers(0, 4, m),
        "tfMuonIndex": rng.integers(0, 128, m),
        "hwPtUnconstrained": rng.integers(0, 256, m) if era == "run3" else np.zeros(m, int),
        "hwDXY": rng.integers(0, 4, m) if era == "run3" else np.zeros(m, int),
    }  # fmt: skip
    muons["chargeValid"] = muons["charge"] != 0
    record = np.repeat(np.arange(n), counts)
    muons["slot"] = np.where(rng.random(m) < 0.5, 1, 2)
    order = np.lexsort((muons["slot"], record))
    muons = {k: v[order] for k, v in muons.items()}
    orbit = np.sort(rng.choice(rng.integers(1, 1 << 31, max(n // 4, 1)), n))  # about 4 BX per orbit
    bx = rng.integers(0, 1 << 16, n) if era == "run2" else rng.integers(0, sc.LAST_BX + 1, n)  # Run-3: ≤ 3564
    return ak.zip(
        {"run": np.full(n, 123, np.uint32), "orbit": orbit.astype(np.uint32),
         "bx": bx.astype(np.uint32), "muons": ak.unflatten(ak.zip(muons), counts)},
        depth_limit=1,
    )  # fmt: skip


def _write(path, records: ak.Array, era: str) -> None:
    if era == "run2":
        sc.write_run2(path, records)
    else:
        sc.write_run3(path, records, run=123, lumi=1)


def _with_muon_value(records: ak.Array, field: str, value: int) -> ak.Array:
    """``records`` with ``field`` of the first muon set to ``value``."""
    flat = ak.flatten(records.muons)
    column = ak.to_numpy(flat[field]).copy()
    column[0] = value
    muons = ak.unflatten(ak.with_field(flat, column, field), ak.num(records.muons))
    return ak.with_field(records, muons, "muons")


def _assert_same_records(got: ak.Array, want: ak.Array) -> None:
    assert len(got) == len(want)
    for name in ("run", "orbit", "bx"):
        np.testing.assert_array_equal(got[name].to_numpy(), want[name].to_numpy(), err_msg=name)
    np.testing.assert_array_equal(ak.num(got.muons).to_numpy(), ak.num(want.muons).to_numpy())
    for name in HW_AND_SLOT:
        got_flat = ak.to_numpy(ak.flatten(got.muons[name]))
        np.testing.assert_array_equal(got_flat, ak.to_numpy(ak.flatten(want.muons[name])), err_msg=name)


# ----------------------------------------------------------------------------------------------------------
# Run-2: hand-built bytes


RUN2_MUON_A = _f(100, 41, 12, -50), _s(1, 1, 1, 40, 98, _u9(-45))
RUN2_MUON_B = _f(575, 1, 8, 200), _s(0, 0, 1, 70, 3, _u9(180))
RUN2_INTERMEDIATE = _f(0, 10, 4, 0), _s(0, 0, 0, 0, 300, 0)


def _run2_bytes() -> bytes:
    first = _words(_header(1, 1), 0x0F80_0123, 1000, *RUN2_MUON_A, *RUN2_MUON_B)
    second = _words(_header(1, 0), 77, 1001, *RUN2_INTERMEDIATE)
    return first + second


def test_run2_hand_built_decodes_to_known_values(tmp_path):
    path = tmp_path / "scout_326790_000003.dat"
    path.write_bytes(_run2_bytes())
    out = sc.read(path)
    assert out.fields == ["run", "orbit", "bx", "muons"]
    assert out.run.to_list() == [326790, 326790]
    assert out.orbit.to_list() == [1000, 1001]
    assert out.bx.to_list() == [0x123, 77]  # link id / flag bits above bit 15 masked off
    assert ak.num(out.muons).to_list() == [2, 0]  # the intermediate muon is dropped
    a, b = out.muons[0].to_list()
    assert {k: a[k] for k in HW_AND_SLOT} == {
        "hwPt": 41, "hwQual": 12, "hwEta": -45, "hwPhi": 98, "hwEtaAtVtx": -50, "hwPhiAtVtx": 100,
        "charge": -1, "chargeValid": True, "hwIso": 1, "tfMuonIndex": 40, "hwPtUnconstrained": 0, "hwDXY": 0,
        "slot": 1,
    }  # fmt: skip
    assert (b["hwPt"], b["hwEta"], b["hwEtaAtVtx"], b["hwPhiAtVtx"], b["charge"], b["slot"]) == (
        1, 180, 200, 575, 1, 2,
    )  # fmt: skip
    assert a["pt"] == 20.0 and b["pt"] == 0.0
    assert a["eta"] == pytest.approx(-45 * 0.010875, rel=1e-6)
    assert a["etaAtVtx"] == pytest.approx(-50 * 0.010875, rel=1e-6)
    assert a["phi"] == pytest.approx(98 * 2 * np.pi / 576, rel=1e-6)
    assert b["phiAtVtx"] == pytest.approx(-2 * np.pi / 576, abs=1e-6)  # wrapped into [-pi, pi)


def test_run2_intermediate_muons_kept_on_request(tmp_path):
    path = tmp_path / "x.dat"
    path.write_bytes(_run2_bytes())
    out = sc.read(path, drop_intermediate=False)
    assert out.run.to_list() == [0, 0]  # the name does not follow <prefix>_<run>_<index>.dat
    assert ak.num(out.muons).to_list() == [2, 1]
    assert out.muons[1, 0].hwPhi == 300 and out.muons[1, 0].tfMuonIndex == 0


# ----------------------------------------------------------------------------------------------------------
# Run-3: hand-built bytes

# slot 1: ptUnconstrained 11, shower bit (masked), dxy 2; extra: eta 28 in bits 13-21, junk in 22-30 and 1-8
RUN3_SLOT1 = (
    _f(10, 21, 15, 30),
    _s(2, 0, 1, 50, 12, 11 | 1 << 8 | 2 << 9),
    _u9(28) << 13 | _u9(-100) << 22 | 0x5A << 1,
)
RUN3_INTERMEDIATE = _f(20, 50, 12, 5), _s(0, 0, 1, 60, 20), 1 << 31 | _u9(7) << 13
RUN3_SLOT2 = _f(500, 101, 13, -120), _s(0, 1, 1, 100, 502), _u9(-118) << 22 | _u9(77) << 13 | 1
RUN3_QUAL0 = _f(30, 30, 0, 40), _s(0, 0, 1, 70, 30), _u9(40) << 22 | 1
RUN3_PT0 = _f(30, 0, 12, 40), _s(0, 0, 1, 70, 30), _u9(40) << 13


def _run3_payload() -> bytes:
    first = _words(_header(2, 2), 1234, 0x8000_0000 | 5000, *RUN3_SLOT1, *RUN3_INTERMEDIATE, *RUN3_SLOT2,
                   *RUN3_QUAL0)  # fmt: skip
    second = _words(_header(1, 0), 1235, 5000, *RUN3_PT0)
    return _words(1) + first + second


@pytest.mark.parametrize(("version", "flags"), [(6, 0), (6, 1), (5, 0), (4, 0), (3, 0)])
def test_run3_hand_built_skips_like_cmssw(tmp_path, version, flags):
    path = tmp_path / "run367000_ls0012.raw"
    event = _frd_event(_run3_payload(), orbit=5000, version=version, padding=8, flags=flags)
    path.write_bytes(_run3_file([event]))
    out = sc.read(path)
    assert out.run.to_list() == [367000, 367000]
    assert out.orbit.to_list() == [5000, 5000]  # bit 31 masked
    assert out.bx.to_list() == [1234, 1235]
    assert ak.num(out.muons).to_list() == [2, 0]  # intermediate, hwQual=0 and hwPt=0 muons skipped
    one, two = out.muons[0].to_list()
    assert {k: one[k] for k in HW_AND_SLOT} == {
        "hwPt": 21, "hwQual": 15, "hwEta": 28, "hwPhi": 12, "hwEtaAtVtx": 30, "hwPhiAtVtx": 10, "charge": 1,
        "chargeValid": True, "hwIso": 2, "tfMuonIndex": 50, "hwPtUnconstrained": 11, "hwDXY": 2, "slot": 1,
    }  # fmt: skip
    assert two["slot"] == 2 and two["hwEta"] == -118  # from extra bits 22-30, not 13-21
    assert (two["hwPt"], two["charge"], two["hwPhi"], two["tfMuonIndex"]) == (101, -1, 502, 100)
    assert two["eta"] == pytest.approx(-118 * 0.010875, rel=1e-6)


def test_run3_skips_other_sources_with_one_warning(tmp_path):
    path = tmp_path / "mixed.raw"
    calo = _frd_event(_words(2, 0xDEAD, 0xBEEF), orbit=4999)
    path.write_bytes(_run3_file([calo, _frd_event(_run3_payload(), orbit=5000), calo]))
    with pytest.warns(sc.ScoutingWarning, match=r"skipped 2 FRD events .*2 \(2x\)") as record:
        out = sc.read(path)
    assert len(record) == 1 and str(path) in str(record[0].message)
    assert out.orbit.to_list() == [5000, 5000]
    assert sc.summarize(path)["n_orbits"] == 1


def test_run3_v1_file_header(tmp_path):
    path = tmp_path / "v1.raw"
    event = _frd_event(_run3_payload(), orbit=5000)
    path.write_bytes(struct.pack("<4s4sHHIQ", b"RAW_", b"0001", 24, 1, 12, 24 + len(event)) + event)
    assert ak.num(sc.read(path).muons).to_list() == [2, 0]


# ----------------------------------------------------------------------------------------------------------
# writers and round trips


def test_run2_round_trip_every_field_and_byte_exact(tmp_path):
    want = _random_records(np.random.default_rng(1), 500, "run2")
    path = tmp_path / "scout_000123_000000.dat"
    sc.write_run2(path, want)
    got = sc.read(path, drop_intermediate=False)
    _assert_same_records(got, want)
    again = tmp_path / "scout_000123_000001.dat"
    sc.write_run2(again, got)
    assert again.read_bytes() == path.read_bytes()


def test_run3_round_trip_every_field_and_byte_exact(tmp_path):
    want = _random_records(np.random.default_rng(2), 500, "run3")
    path = tmp_path / "run3.raw"
    sc.write_run3(path, want, run=123, lumi=7)
    got = sc.read(path)
    _assert_same_records(got, want)
    magic, version, size, data_type, n_events, run, lumi, file_size = struct.unpack(
        "<4s4sHHIIIQ", path.read_bytes()[:32]
    )
    assert (magic, version, size, data_type, run, lumi) == (b"RAW_", b"0002", 32, 0, 123, 7)
    assert n_events == len(np.unique(want.orbit.to_numpy())) and file_size == path.stat().st_size
    again = tmp_path / "again.raw"
    sc.write_run3(again, got, run=123, lumi=7)
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("era", ["run2", "run3"])
def test_floats_follow_the_scouting_scales(tmp_path, era):
    records = _random_records(np.random.default_rng(3), 200, era)
    path = tmp_path / f"f_{era}.dat"
    _write(path, records, era)
    muons = ak.flatten(sc.read(path, drop_intermediate=False).muons)
    for name, convert, hw in [
        ("pt", scales.hw_to_pt, "hwPt"), ("eta", scales.hw_to_eta, "hwEta"),
        ("etaAtVtx", scales.hw_to_eta, "hwEtaAtVtx"), ("phi", scales.hw_to_phi, "hwPhi"),
        ("phiAtVtx", scales.hw_to_phi, "hwPhiAtVtx"),
    ]:  # fmt: skip
        expected = convert(ak.to_numpy(muons[hw]), convention="scouting")
        np.testing.assert_array_equal(ak.to_numpy(muons[name]), expected, err_msg=name)
        assert muons[name].type.content == ak.types.NumpyType("float32")


@pytest.mark.parametrize("era", ["run2", "run3"])
def test_bz2_round_trip(tmp_path, era):
    want = _random_records(np.random.default_rng(4), 300, era)
    path = tmp_path / "scout_000123_000000.dat.bz2"
    plain = tmp_path / "scout_000123_000000.dat"
    for target in (path, plain):
        _write(target, want, era)
    assert path.read_bytes()[:3] == b"BZh"
    assert bz2.decompress(path.read_bytes()) == plain.read_bytes()
    assert sc.detect_format(path) == f"scouting-{era}"
    _assert_same_records(sc.read(path, drop_intermediate=False), want)
    assert ak.array_equal(sc.read(path, chunk_bytes=100), sc.read(plain))


@pytest.mark.parametrize("chunk_bytes", [1, 13, 100])
@pytest.mark.parametrize("era", ["run2", "run3"])
def test_tiny_chunks_give_the_same_records(tmp_path, era, chunk_bytes):
    want = _random_records(np.random.default_rng(5), 200, era)
    path = tmp_path / f"chunks_{era}.dat"
    _write(path, want, era)
    whole = sc.read(path, drop_intermediate=False)
    chunks = list(sc.iterate(path, chunk_bytes=chunk_bytes, drop_intermediate=False))
    assert len(chunks) > 10
    assert all(len(c) for c in chunks)
    assert ak.array_equal(ak.concatenate(chunks), whole)
    assert ak.array_equal(sc.read(path, chunk_bytes=chunk_bytes, drop_intermediate=False), whole)


def test_no_records(tmp_path):
    none = _random_records(np.random.default_rng(6), 0, "run3")
    path = tmp_path / "empty.raw"
    sc.write_run3(path, none, run=1, lumi=1)
    out = sc.read(path)
    assert len(out) == 0 and out.muons.fields == list(sc.MUON_FIELDS)
    with pytest.raises(ValueError, match="empty file"):  # which readers reject, as the format demands
        sc.write_run2(tmp_path / "scout_000001_000000.dat", none)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("hwPt", 600, "hwPt"), ("slot", 3, "slot"), ("bx", 1 << 16, "bx")],
)
def test_writer_rejects_bad_values_and_leaves_no_file(tmp_path, field, value, match):
    records = _random_records(np.random.default_rng(7), 20, "run2")
    if field == "bx":
        records = ak.with_field(records, np.full(len(records), value, np.int64), "bx")
    else:
        records = _with_muon_value(records, field, value)
    path = tmp_path / "scout_000001_000000.dat"
    with pytest.raises(ValueError, match=match):
        sc.write_run2(path, records)
    assert list(tmp_path.iterdir()) == []


def test_writer_failure_midway_keeps_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "scout_000001_000000.dat.bz2"
    records = _random_records(np.random.default_rng(8), 50, "run2")
    sc.write_run2(path, records)
    before = path.read_bytes()

    def failing_open(name, mode):
        with open(name, mode) as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(bz2, "open", failing_open)
    with pytest.raises(OSError, match="disk full"):
        sc.write_run2(path, records[:10])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize(
    ("field", "value", "match"), [("bx", 3565, "at most 3564"), ("slot", 1, "more than 8 muons of one slot")]
)
def test_run3_writer_refuses_what_readers_reject(tmp_path, field, value, match):
    records = _random_records(np.random.default_rng(14), 5, "run3")
    if field == "bx":
        records = ak.with_field(records, np.full(len(records), value, np.int64), "bx")
    else:
        nine = ak.with_field(ak.concatenate([ak.flatten(records.muons)[:1]] * 9), value, "slot")
        records = ak.with_field(records[:1], ak.unflatten(nine, [9]), "muons")  # nine slot-1 muons in one BX
    with pytest.raises(ValueError, match=match):
        sc.write_run3(tmp_path / "x.raw", records, run=1, lumi=1)
    assert list(tmp_path.iterdir()) == []


def test_run3_writer_refuses_muons_readers_would_drop(tmp_path):
    records = _with_muon_value(_random_records(np.random.default_rng(9), 20, "run3"), "hwQual", 0)
    with pytest.raises(ValueError, match="hwQual == 0"):
        sc.write_run3(tmp_path / "x.raw", records, run=1, lumi=1)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------
# corrupt input


def _valid_run3_event() -> bytes:
    return _frd_event(_run3_payload(), orbit=5000)


CORRUPT = {
    # name: (file bytes, fmt, expected offset, message fragment)
    "run2 partial record": (
        _run2_bytes() + _words(_header(2, 0), 1, 2, *RUN2_MUON_A), "scouting-run2", 48, "truncated BX record"
    ),
    "run2 partial header": (_run2_bytes() + b"\x00" * 6, "scouting-run2", 48, "truncated BX record header"),
    "run2 odd tail": (_run2_bytes() + b"\x01", None, 48, "truncated"),
    "run3 wrong magic": (_run2_bytes(), "scouting-run3", 0, "magic"),
    "run3 truncated file header": (_raw_header(1, 1, 1, 100)[:20], "scouting-run3", 0, "file header"),
    "run3 event size overruns file": (
        _raw_header(1, 1, 1, 0) + _valid_run3_event()[:-8], None, 32, "overruns the file"
    ),
    "run3 partial event header": (_raw_header(1, 1, 1, 0) + _words(6, 1, 2), None, 32, "FRD event header"),
    "run3 BX muon count overruns payload": (
        _run3_file([_frd_event(_words(1, _header(3, 0), 1, 2, *RUN3_SLOT1), orbit=2)]), None, 32 + 24 + 4,
        "mA=3",
    ),
    "run3 BX header overruns payload": (
        _run3_file([_frd_event(_words(1, _header(0, 0), 1), orbit=2)]), None, 32 + 24 + 4, "BX record header",
    ),
    "run3 unknown FRD version": (
        _raw_header(1, 1, 1, 0) + _words(7, 1, 2, 3, 4, 0, 1), None, 32, "version 7"
    ),
    "run3 file size mismatch": (
        _raw_header(1, 1, 1, 999) + _valid_run3_event(), None, 32 + len(_valid_run3_event()), "999"
    ),
    "empty file": (b"", None, 0, "empty file"),
    "empty file as run2": (b"", "scouting-run2", 0, "empty file"),
    "empty file as run3": (b"", "scouting-run3", 0, "empty file"),
    "garbage": (b"\xff" * 64, None, 0, "neither"),
    "too short for anything": (_words(_header(1, 0), 5), None, 0, "too short"),
    "first record longer than file": (_words(_header(1, 0), 5, 6, 7), None, 0, "longer than the file"),
    "run3 container read as run2": (_run3_file([_valid_run3_event()]), "scouting-run2", 0, "Run-3"),
    # every record is validated, not only those in the first 64 KiB (issue 13; deep-file cases below)
    "run2 later record counts above 8": (
        _run2_bytes() + _words(0xFF << 24 | 9 << 16 | 0xFF << 8, 1, 2), "scouting-run2", 48,
        "BX record header 0xff09ff00 has muon counts 9+0 > 8",
    ),
    "run2 header count bits 4-7 set": (
        _run2_bytes() + _words(_header(0, 0x11), 1, 2), "scouting-run2", 48, "muon counts 0+17 > 8",
    ),
    "run2 link-0 match bits clear": (
        _run2_bytes() + _words(1 << 16, 1, 2, *RUN2_MUON_A), "scouting-run2", 48, "bit 0 of bxmatch or orbitmatch",
    ),
    "run3 counts above 8": (
        _run3_file([_frd_event(_words(1, 0xFFFFFFFF, 1, 2), orbit=2)]), None, 32 + 24 + 4,
        "BX record header 0xffffffff has muon counts 255+255 > 8",
    ),
    "run3 bx above 3564": (
        _run3_file([_frd_event(_words(1, _header(0, 0), 3565, 2), orbit=2)]), None, 32 + 24 + 4,
        "BX record bx 3565 is above 3564",
    ),
    "run3 two orbits in one event": (
        _run3_file([_frd_event(_words(1, _header(0, 0), 5, 2, _header(0, 0), 6, 0x8000_0003), orbit=2)]), None,
        32 + 24 + 4 + 12, "BX record orbit 3 differs from orbit 2 of the first BX record of its FRD event",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CORRUPT)
def test_corrupt_input_raises_format_error_with_file_and_offset(tmp_path, case):
    data, fmt, offset, fragment = CORRUPT[case]
    path = tmp_path / "bad_file_000001_000002.dat"
    path.write_bytes(data)
    with pytest.raises(FormatError) as err:
        sc.read(path, fmt)
    message = str(err.value)
    assert str(path) in message and f"offset {offset}" in message and fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "case", ["run2 partial record", "run2 later record counts above 8", "run3 two orbits in one event"]
)
def test_chunked_reading_reports_the_same_offset(tmp_path, case):
    data, fmt, offset, _ = CORRUPT[case]
    path = tmp_path / "scout_000001_000000.dat"
    path.write_bytes(data)
    with pytest.raises(FormatError, match=f"offset {offset}"):
        list(sc.iterate(path, fmt, chunk_bytes=8))


def _record_headers(words: np.ndarray, era: str) -> list[int]:
    """Word positions of the BX record headers of a valid file of either era."""
    out, pos = [], 0
    if era == "run2":
        while pos < words.size:
            out.append(pos)
            pos += 3 + 2 * int((words[pos] >> 16 & 0xFF) + (words[pos] & 0xFF))
        return out
    pos = 8  # RAW_0002 file header, then FRD V6 events: 6 header words, the source id, the records
    while pos < words.size:
        end, q = pos + 6 + int(words[pos + 4]) // 4, pos + 7
        while q < end:
            out.append(q)
            q += 3 + 3 * int((words[q] >> 16 & 0xFF) + (words[q] & 0xFF))
        pos = end
    return out


@pytest.mark.parametrize(
    ("era", "word", "value", "fragment"),
    [
        ("run2", 0, 0xFFFF_FFFF, "BX record header 0xffffffff has muon counts 255+255 > 8"),  # the case
        ("run2", 0, 0x00FF_0F00, "muon counts 255+0 > 8"),
        ("run3", 0, 0xFFFF_FFFF, "muon counts 255+255 > 8"),
        ("run3", 1, 0xFFFF_FFFF, "BX record bx 4294967295 is above 3564"),
    ],
)
def test_a_corrupt_record_far_after_the_first_64_kib_stops_the_read(tmp_path, era, word, value, fragment):
    records = _random_records(np.random.default_rng(13), 8000, era)
    path = tmp_path / "scout_000123_000000.dat"
    _write(path, records, era)
    words = np.fromfile(path, "<u4")
    header = next(p for p in _record_headers(words, era) if 4 * p > 200_000)
    words[header + word] = value
    words.tofile(path)
    for chunk_bytes in (None, 4096):
        with pytest.raises(FormatError) as err:
            sc.read(path, chunk_bytes=chunk_bytes, drop_intermediate=False)
        message = str(err.value)
        assert message.startswith(f"{path} at byte offset {4 * header}: ") and fragment in message
        assert "\n" not in message
    with pytest.raises(FormatError, match=f"offset {4 * header}"):
        sc.summarize(path)


def test_corrupt_bz2_stream(tmp_path):
    path = tmp_path / "scout_000001_000000.dat.bz2"
    path.write_bytes(bz2.compress(_run2_bytes() * 50)[:-20])
    with pytest.raises(FormatError, match="offset") as err:
        sc.read(path, "run2")
    assert str(path) in str(err.value)


# ----------------------------------------------------------------------------------------------------------
# bit-27 quirk, detection, summary


def _bit27_records(rng, n: int, forced: bool, spare_first: bool = False) -> ak.Array:
    """Random records; ``forced``: bit 4 of every hwEtaAtVtx set (but cleared in the first muon if asked)."""
    records = _random_records(rng, n, "run2")
    flat = ak.flatten(records.muons)
    eta = ak.to_numpy(flat.hwEtaAtVtx)
    eta = np.where(forced, ((eta & 0x1FF) | 0x10) - ((eta & 0x100) << 1), eta)  # set bit 4 of the 9-bit field
    if spare_first:
        eta[0] &= ~0x10
    flat = ak.with_field(flat, eta, "hwEtaAtVtx")
    return ak.with_field(records, ak.unflatten(flat, ak.num(records.muons)), "muons")


def test_bit27_warning_fires_when_every_muon_has_it(tmp_path):
    path = tmp_path / "scout_327000_000000.dat"
    sc.write_run2(path, _bit27_records(np.random.default_rng(10), 100, forced=True))
    with pytest.warns(sc.ScoutingQuirkWarning, match="hwEtaAtVtx") as record:
        sc.read(path)
    assert str(path) in str(record[0].message) and "100%" in str(record[0].message)
    assert issubclass(sc.ScoutingQuirkWarning, UserWarning)
    assert sc.bit27_fraction(path) == 1.0
    summary = sc.summarize(path)
    assert summary["bit27_fraction"] == 1.0 and len(summary["warnings"]) == 1


@pytest.mark.parametrize(
    ("n", "forced", "spare_first", "fraction"),
    [(100, False, False, (0.2, 0.8)), (100, True, True, (0.99, 0.999)), (3, True, False, (1.0, 1.0))],
    ids=["random", "all but one", "too few muons"],
)
def test_bit27_warning_silent_otherwise(tmp_path, n, forced, spare_first, fraction):
    path = tmp_path / "scout_327000_000000.dat"
    sc.write_run2(path, _bit27_records(np.random.default_rng(11), n, forced, spare_first))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sc.read(path)
    assert fraction[0] <= sc.bit27_fraction(path) <= fraction[1]


def test_detect_format(tmp_path):
    run2, run3 = tmp_path / "scout_000001_000000.dat", tmp_path / "run3.raw"
    rng = np.random.default_rng(12)
    sc.write_run2(run2, _random_records(rng, 30, "run2"))
    sc.write_run3(run3, _random_records(rng, 30, "run3"), run=1, lumi=1)
    assert sc.detect_format(run2) == "scouting-run2"
    assert sc.detect_format(run3) == "scouting-run3"
    assert len(sc.read(run2, "run2")) == len(sc.read(run3, "run3")) == 30
    with pytest.raises(ValueError, match="unknown scouting format"):
        sc.read(run2, "l1ntuple")


def test_run_from_name():
    assert sc.run_from_name("/x/scout_326790_000012.dat") == 326790
    assert sc.run_from_name("scout_GMT_000362_000001.dat.bz2") == 362
    assert sc.run_from_name("muons.dat") == 0


def test_summarize(tmp_path):
    path = tmp_path / "scout_326790_000003.dat"
    path.write_bytes(_run2_bytes())
    summary = sc.summarize(path, n_first=1)
    keys = ("format", "era", "run", "n_orbits", "n_bx", "n_muons", "n_muons_raw")
    assert {k: summary[k] for k in keys} == {
        "format": "scouting-run2", "era": "run2", "run": 326790, "n_orbits": 2, "n_bx": 2, "n_muons": 2,
        "n_muons_raw": 3,
    }  # fmt: skip
    assert summary["bit27_fraction"] == 0.0  # hwEtaAtVtx -50, 200 and 0 all have bit 4 clear
    assert len(summary["first"]) == 1 and summary["first"][0]["bx"] == 0x123
    run3 = tmp_path / "run3.raw"
    run3.write_bytes(_run3_file([_valid_run3_event()]))
    summary = sc.summarize(run3)
    assert summary["header"]["run"] == 367000 and summary["bit27_fraction"] is None
    assert (summary["n_orbits"], summary["n_bx"], summary["n_muons"], summary["n_muons_raw"]) == (1, 2, 2, 5)


def test_muon_fields_constant_matches_layout(tmp_path):
    path = tmp_path / "scout_000001_000000.dat"
    path.write_bytes(_run2_bytes())
    assert sc.read(path).muons.fields == list(sc.MUON_FIELDS)
    assert sc.MUON_FIELDS[:4] == ("hwPt", "hwQual", "hwEta", "hwPhi")
