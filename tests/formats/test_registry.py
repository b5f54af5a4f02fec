"""The format registry: one list of formats, detection without reading remote files, a cheap import."""

import subprocess
import sys

import pytest

from l1refit.errors import FormatError
from l1refit.formats import registry


def test_lists_nest_in_the_order_error_messages_print():
    assert registry.EVENT_FORMATS == (
        "l1ntuple", "nanoaod", "scouting-run2", "scouting-run3", "l1scouting-edm", "l1scouting-nano"
    )  # fmt: skip
    assert ("parquet", *registry.EVENT_FORMATS) == registry.REFIT_FORMATS
    assert (*registry.OFFLINE_FORMATS, *registry.L1_ONLY_FORMATS) == registry.EVENT_FORMATS
    assert ("parquet", "l1ntuple", *registry.SCOUTING_FORMATS, "l1scouting-nano") == registry.CONVERT_TO


def test_remote_urls_are_l1ntuples_and_never_opened():
    assert registry.detect_format("root://eos.example//store/x.root") == "l1ntuple"
    assert registry.is_remote("https://host/x.root") and not registry.is_remote("results/x.root")


def test_missing_file_and_format_mismatch(cmssw_ntuple, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        registry.detect_format(tmp_path / "absent.root")
    assert registry.check_format(cmssw_ntuple, None) == "l1ntuple"
    with pytest.raises(FormatError, match="is a l1ntuple file, but the format 'scouting-run3' was expected"):
        registry.check_format(cmssw_ntuple, "scouting-run3")


def test_import_is_cheap():
    """The Snakefile imports the registry (through the config) when it is parsed: no awkward, numba or uproot."""
    code = "import sys, l1refit.config.datasets; print(sorted({'awkward', 'numba', 'uproot'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_describe_other_never_claims_a_scouting_file():
    """A Run-2 stream starts with a muon count 0..8 (never text), a Run-3 file with RAW_, bz2 with BZh."""
    header = 0xFF << 24 | 2 << 16 | 0xFF << 8 | 1
    for count in range(9):
        run2 = (header & ~0xFF | count).to_bytes(4, "little") + b"abcdefgh" * 10
        assert registry.describe_other(run2) is None
    assert registry.describe_other(b"RAW_0002" + b"x" * 100) is None
    assert registry.describe_other(b"BZh91AY&SY" + b"x" * 100) is None
    assert registry.describe_other(b"PAR1\x15\x04") == "a Parquet file (magic PAR1)"
    assert registry.describe_other(b"a,b\n1,2\n") == "a text file (it starts 'a,b')"
    assert registry.describe_other("é".encode()[:1]) is None  # one byte of a two-byte character: not text
    assert registry.describe_other(b"text, then a cut character " + "é".encode()[:1]).startswith("a text file")


def test_text_and_parquet_files_are_named_with_the_accepted_formats(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("selection:\n  l1_pt: [45, 2.5]\n")
    with pytest.raises(FormatError) as err:
        registry.detect_format(path)
    assert str(err.value) == (
        f"{path}: is a text file (it starts 'selection:'), not an accepted input; accepted formats: l1ntuple, "
        "nanoaod, l1scouting-edm, l1scouting-nano (ROOT files), scouting-run2 (a stream of BX records, .dat or "
        ".dat.bz2), scouting-run3 (a RAW_ container)"
    )
