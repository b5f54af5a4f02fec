"""The format registry: one list of formats, detection without reading remote files, a cheap import."""

import subprocess
import sys

import pytest

from l1refit.errors import FormatError
from l1refit.formats import registry


def test_lists_nest_in_the_order_error_messages_print():
    assert registry.ALL_FORMATS == ("parquet", "l1ntuple", "scouting-run2", "scouting-run3")
    assert registry.ALL_FORMATS[1:] == registry.EVENT_FORMATS
    assert registry.EVENT_FORMATS[1:] == registry.SCOUTING_FORMATS


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
