"""The calibration sample follows the configured selection, the shipped generator defaults match the paper's GMT
row, and the calibration table has its rows."""

import numpy as np
import pytest

from l1refit.analysis.metrics import METRIC_COLUMNS, paper_row
from l1refit.errors import ConfigError
from l1refit.simulate import calibration
from l1refit.simulate.matched import matched_sample, simulated_gmt_metrics


@pytest.fixture(scope="module")
def sample(gen, luts, selection):
    return matched_sample(gen, 50_000, 3, luts, selection=selection)


def _size(gen, luts, selection, **change):
    return matched_sample(gen, 50_000, 3, luts, selection={**selection, **change}).hw_pt.size


def test_the_sample_passes_the_configured_cuts(sample, selection):
    lo, hi = selection["l1_pt"]
    assert sample.hw_pt.size > 10_000
    assert np.all((sample.l1["pt"] > lo) & (sample.l1["pt"] < hi))
    assert np.all(np.abs(sample.l1["eta"]) < 1.0)  # barrel track finder only


def test_each_selection_key_acts_as_in_the_skim(gen, luts, selection, sample):
    default = sample.hw_pt.size
    assert _size(gen, luts, selection, min_quality=15) < default  # 4-station tracks only
    assert _size(gen, luts, selection, l1_pt=[10.0, 45.0]) < default
    assert _size(gen, luts, selection, match_dr2=0.001) < default
    assert _size(gen, luts, selection, offline_min_pt=10.0) < default
    assert _size(gen, luts, selection, offline_id="none") > default  # the tight ID's inefficiency
    assert _size(gen, luts, selection, tf_muon_index=[36, 53]) < 0.6 * default  # half of the BMTF wedges
    assert _size(gen, luts, selection, tf_muon_index=[18, 89]) > default  # the OMTF too
    assert _size(gen, luts, selection, bx=1) == 0  # the chain's candidates are all in time
    with pytest.raises(ConfigError, match="selection.l1_pt"):
        _size(gen, luts, selection, l1_pt=[45.0, 2.5])


def test_calibrated_defaults_reproduce_the_paper_within_tolerance(gen, selection):
    """The committed generator defaults must keep matching the paper's GMT row (acceptance of the generator)."""
    ours = simulated_gmt_metrics(gen, 400_000, seed=11, selection=selection)
    dev = calibration.deviation(ours, paper_row("GMT"))
    ok = calibration.within_tolerance(dev)
    failing = [k for k in METRIC_COLUMNS if not ok[k] and k not in calibration.UNREACHABLE]
    assert not failing, {k: (round(ours[k], 4), round(dev[k], 4)) for k in failing}


def test_calibration_table_rows(tmp_path, gen, selection):
    table = calibration.write_calibration_table(
        tmp_path / "c.csv", gen, selection=selection, n=60_000, seed=1, n_bayes=60_000, bayes_seed=2
    )
    assert table.row.tolist() == [
        "paper_gmt", "synthetic_gmt", "deviation", "within_tolerance", "paper_best_nn", "bayes_limit"
    ]  # fmt: skip
    rows = table.set_index("row")
    for var in ("phi", "eta", "pt"):  # the limit is never worse than doing nothing
        assert rows.loc["bayes_limit", f"{var}_rms"] <= rows.loc["synthetic_gmt", f"{var}_rms"] * 1.02
