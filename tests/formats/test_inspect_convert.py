"""Format detection, inspection and conversion through the real readers and writers, and the CLI."""

import json

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest

from l1refit.cli import main
from l1refit.errors import FormatError
from l1refit.formats import l1ntuple, registry, scouting
from l1refit.formats.convert import convert, output_format
from l1refit.formats.inventory import inspect_file, write_inventory
from l1refit.formats.registry import detect_format


@pytest.fixture(scope="module")
def fixture_events(cmssw_ntuple):
    return l1ntuple.read(cmssw_ntuple)


def test_detect_format_of_each_kind(cmssw_ntuple, tmp_path):
    assert detect_format(cmssw_ntuple) == "l1ntuple"
    run2, run3 = tmp_path / "scout_000001_000000.dat", tmp_path / "x.raw"
    convert(cmssw_ntuple, run2)
    convert(cmssw_ntuple, run3)
    assert detect_format(run2) == "scouting-run2"
    assert detect_format(run3) == "scouting-run3"
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")  # starts with "root" but is no ROOT file
    with pytest.raises(FormatError, match="passwd"):
        detect_format(text)


def test_inspect_l1ntuple_counts(cmssw_ntuple):
    summary = inspect_file(cmssw_ntuple)
    assert (summary["n_events"], summary["n_l1_muons"], summary["n_offline_muons"]) == (1000, 1225, 1177)
    assert summary["layout"] == "cmssw-split"
    with pytest.raises(FormatError, match="is a l1ntuple file, but the format 'scouting-run2' was expected"):
        inspect_file(cmssw_ntuple, "scouting-run2")


@pytest.mark.parametrize("suffix", [".dat", ".raw"])
def test_l1ntuple_to_scouting_and_back_keeps_every_muon(cmssw_ntuple, fixture_events, tmp_path, suffix):
    raw = tmp_path / f"scout_325000_000001{suffix}"
    counts = convert(cmssw_ntuple, raw)
    assert counts["muons"] == 1225 and counts["events"] == 1000
    back = tmp_path / "back.root"
    convert(raw, back)
    again = l1ntuple.read(back, require_offline=False)
    # BX records order muons by (event, bx); compare as sorted multisets of hardware tuples
    keys = ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual", "tfMuonIndex")

    def rows(events):
        mu = ak.flatten(events.L1Mu)
        return sorted(zip(*(ak.to_numpy(mu[k]).astype(int).tolist() for k in keys), strict=True))

    assert rows(again) == rows(fixture_events)
    # event identity: orbit and bx come through, event = orbit * 3565 + bx
    np.testing.assert_array_equal(again.event, again.orbit * 3565 + again.bx)


def test_scouting_to_l1ntuple_drops_zero_pt_like_cmssw(tmp_path):
    muons = {
        "hwPt": [1, 20], "hwQual": [12, 12], "hwEta": [0, 10], "hwPhi": [5, 6], "hwEtaAtVtx": [0, 9],
        "hwPhiAtVtx": [5, 8], "charge": [1, -1], "chargeValid": [True, True], "hwIso": [0, 0],
        "tfMuonIndex": [40, 41], "hwPtUnconstrained": [0, 0], "hwDXY": [0, 0], "slot": [1, 2],
    }  # fmt: skip
    records = ak.zip(
        {"run": [7], "orbit": [100], "bx": [200], "muons": ak.unflatten(ak.zip(muons), [2])}, depth_limit=1
    )
    raw = tmp_path / "scout_000007_000000.dat"
    scouting.write_run2(raw, records)
    counts = convert(raw, tmp_path / "out.root")
    assert counts == {"events": 1, "muons": 1, "dropped_zero_pt": 1}
    events = l1ntuple.read(tmp_path / "out.root", require_offline=False)
    assert events.run.tolist() == [7] and events.event.tolist() == [100 * 3565 + 200]
    assert ak.flatten(events.L1Mu.hwPt).tolist() == [20]
    assert ak.flatten(events.L1Mu.pt).tolist() == [9.5]  # (20 - 1) * 0.5, filled in by the writer


def test_parquet_rows_carry_identity_and_fields(cmssw_ntuple, tmp_path):
    out = tmp_path / "l1.parquet"
    assert convert(cmssw_ntuple, out) == {"muons": 1225}
    table = pq.read_table(out).to_pandas()
    assert len(table) == 1225 and {"run", "lumi", "event", "hwPt", "pt", "etaSt2"} <= set(table.columns)
    assert (table.run == 325000).all()


def test_inventory_json_and_wrong_format_error(cmssw_ntuple, tmp_path):
    out = tmp_path / "inv.json"
    inv = write_inventory([str(cmssw_ntuple)], "l1ntuple", out, chunk_bytes=1 << 20)
    assert json.loads(out.read_text()) == inv
    assert inv["totals"]["n_l1_muons"] == 1225
    bad = tmp_path / "bad.json"
    with pytest.raises(FormatError):
        write_inventory([str(cmssw_ntuple)], "scouting-run3", bad, chunk_bytes=1 << 20)
    assert not bad.exists()


def test_output_format_from_suffix():
    assert output_format("a.dat.bz2") == "scouting-run2"
    assert output_format("a.raw") == "scouting-run3"
    with pytest.raises(ValueError, match="--to"):
        output_format("a.txt")


def test_cli_inspect_and_errors(cmssw_ntuple, tmp_path, capsys):
    assert main(["inspect", str(cmssw_ntuple), "--first", "1"]) == 0
    out = capsys.readouterr().out
    assert "cmssw-split" in out and "1225" in out
    assert main(["inspect", "--json", str(cmssw_ntuple)]) == 0
    assert json.loads(capsys.readouterr().out)["n_events"] == 1000
    missing = tmp_path / "nope.root"
    assert main(["inspect", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("l1refit: error:") and "nope.root" in err and err.count("\n") == 1
    truncated = tmp_path / "scout_000001_000000.dat"
    convert(cmssw_ntuple, truncated)
    truncated.write_bytes(truncated.read_bytes()[:-6])
    assert main(["inspect", str(truncated)]) == 2
    err = capsys.readouterr().err
    assert "scout_000001_000000.dat" in err and "offset" in err


def test_cli_inspect_stops_at_a_corrupt_bx_header_deep_in_a_converted_file(cmssw_ntuple, tmp_path, capsys):
    """Issue 13, case 1: one BX header overwritten with 0xFFFFFFFF far after the first 64 KiB."""
    events = l1ntuple.read(cmssw_ntuple, require_offline=False)
    many = ak.concatenate([events] * 40)  # about 0.5 MB of Run-2 records
    many = ak.with_field(many, np.arange(len(many)) + 1, "orbit")
    clean = tmp_path / "one.root"
    with l1ntuple.Writer(clean) as writer:
        writer.extend(many)
    path = tmp_path / "scout_325000_000001.dat"
    convert(clean, path)
    assert main(["inspect", str(path)]) == 0
    words = np.fromfile(path, "<u4")
    pos = 0
    while 4 * pos < 300_000:  # walk the records to the first header after 300 kB
        pos += 3 + 2 * int((words[pos] >> 16 & 0xFF) + (words[pos] & 0xFF))
    words[pos] = 0xFFFF_FFFF
    words.tofile(path)
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path} at byte offset {4 * pos}: BX record header 0xffffffff has muon counts 255+255 > 8" in err
    assert err.count("\n") == 1
    assert main(["convert", str(path), str(tmp_path / "out.parquet")]) == 2
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        ("skim.parquet", b"PAR1" + bytes(100) + b"PAR1", "is a Parquet file (magic PAR1)"),
        ("notes.txt", b"run,orbit,bx\n1,2,3\n" * 50, "is a text file (it starts 'run,orbit,bx')"),
        ("muons.dat", "µ-Müonen: ein Text\n".encode() * 40, "is a text file (it starts 'µ-Müonen: ein Text')"),
        ("x.h5", b"\x89HDF\r\n\x1a\n" + bytes(100), "is an HDF5 file (magic \\x89HDF\\r\\n\\x1a\\n)"),
        ("x.dat.gz", b"\x1f\x8b\x08" + bytes(100), "is a gzip-compressed file (magic \\x1f\\x8b)"),
    ],
)
def test_cli_names_what_a_file_of_another_kind_is(tmp_path, capsys, name, content, what):
    """Issue 13, case 8: no "BX record header 0x31524150" for a Parquet or text file."""
    path = tmp_path / name
    path.write_bytes(content)
    for command in (["inspect", str(path)], ["convert", str(path), str(tmp_path / "out.root")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"{path}: {what}" in err and ", not an accepted input; accepted formats: l1ntuple, nanoaod" in err
        assert "scouting-run2" in err and "scouting-run3" in err and "BX record header" not in err
        assert [line for line in err.splitlines() if not line.startswith("converting ")] == [err.splitlines()[-1]]
    assert not (tmp_path / "out.root").exists()


def test_unknown_binary_file_lists_the_accepted_formats(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(FormatError) as err:
        inspect_file(path)
    assert str(err.value).startswith(f"{path} at byte offset 0: neither a Run-3 RAW_ container nor a Run-2")
    assert str(err.value).endswith(f"; {registry.ACCEPTED}")
    assert registry.ACCEPTED.startswith("accepted formats: l1ntuple, nanoaod, l1scouting-edm, l1scouting-nano (ROOT")


def test_cli_convert_prints_counts(cmssw_ntuple, tmp_path, capsys):
    out = tmp_path / "x.parquet"
    assert main(["convert", str(cmssw_ntuple), str(out)]) == 0
    assert "muons: 1225" in capsys.readouterr().out
    assert main(["convert", str(cmssw_ntuple), str(tmp_path / "y.txt")]) == 2


@pytest.mark.parametrize("command", [[], ["inspect"], ["convert"]])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: l1refit" in capsys.readouterr().out
