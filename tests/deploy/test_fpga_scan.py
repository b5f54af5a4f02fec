"""The precision scan and the FPGA Table 3: physics cost per design out of fold, the chosen design, the estimates."""

import numpy as np
import pandas as pd
import pytest

from l1refit.deploy.fpga.scan import FLOAT, firmware_corrected, precision_scan, within
from l1refit.deploy.fpga.table3 import DEVICES, table3_fpga
from l1refit.stages.folds import with_predictions

WIDE = "ap_fixed<18,8,AP_RND,AP_SAT>;dense4.result=ap_fixed<20,10,AP_RND,AP_SAT>"
MID = "ap_fixed<14,8,AP_RND,AP_SAT>;dense4.result=ap_fixed<16,10,AP_RND,AP_SAT>"
NARROW = "ap_fixed<6,4,AP_RND,AP_SAT>;dense4.result=ap_fixed<8,6,AP_RND,AP_SAT>"


@pytest.fixture(scope="module")
def scan(exported):
    _, _, skim, model = exported
    rows = with_predictions(skim, model.predict(skim))
    folds = [rows.iloc[:1500].reset_index(drop=True), rows.iloc[1500:].reset_index(drop=True)]
    fake = {NARROW: 1000.0, MID: 5000.0, WIDE: 9000.0}  # resource "estimates" to follow through Table 3
    table = precision_scan(
        [model, model],
        folds,
        [NARROW, MID, WIDE],
        mass=(model, folds[0]),
        resources=lambda d: {"luts_estimate": fake[d.precision], "ffs_estimate": 10.0, "stages": 3},
    )
    return table.set_index("precision"), rows, model  # fmt: skip


def test_rows_reference_and_deviation(scan):
    table, rows, _ = scan
    assert list(table.index) == [FLOAT, NARROW, MID, WIDE]
    assert np.isnan(table.loc[FLOAT, "pt_rms_dev"]) and table.loc[FLOAT, "why"] == "the float network (reference)"
    # deviations from the float network shrink with the width; the widest is the float model to a few MeV
    dev = table.loc[[NARROW, MID, WIDE], "pt_rms_dev"].to_numpy()
    assert dev[0] > dev[1] > dev[2] and dev[2] < 5e-3  # GeV
    assert {"mass_phi_rms", "mass_pt_tail"} <= set(table.columns)


def test_narrowest_design_within_tolerance_is_chosen(scan):
    table, _, _ = scan
    assert not table.loc[NARROW, "within_tolerance"] and table.loc[NARROW, "why"].startswith("off: ")
    assert table.loc[MID, "within_tolerance"] and table.loc[WIDE, "within_tolerance"]
    assert table["chosen"].tolist() == [False, False, True, False]
    assert table.loc[MID, "why"].startswith("chosen: the narrowest design")


def test_metrics_are_those_of_the_emulated_corrections(scan, exported):
    """The WIDE row's RMS equal a direct computation from firmware_corrected over both folds."""
    table, rows, model = scan
    from l1refit.deploy.fpga.design import build_design
    from l1refit.deploy.fpga.firmware import firmware_model

    design = build_design(firmware_model(model, units="hardware"), WIDE)
    values = firmware_corrected(design, rows)
    dpt = (values[:, 2] - rows["reco_pt"]) / rows["reco_pt"]
    assert table.loc[WIDE, "pt_rms"] == pytest.approx(np.sqrt(np.mean(dpt**2)), rel=1e-12)


def test_tolerance_rule():
    ref = {c: 1.0 for c in ("phi_rms", "eta_rms", "pt_rms")} | {
        f"{v}_{k}": 50.0 for v in ("phi", "eta", "pt") for k in ("core", "tail")}  # fmt: skip
    assert within(dict(ref), ref, 0.01, 0.5) == []
    assert within(ref | {"pt_rms": 1.011}, ref, 0.01, 0.5) == ["pt_rms"]
    assert within(ref | {"phi_core": 49.4, "eta_tail": 50.6}, ref, 0.01, 0.5) == ["phi_core", "eta_tail"]
    # one-sided: better than the float network is no physics cost
    assert within(ref | {"pt_rms": 0.9, "phi_core": 50.6, "eta_tail": 49.4}, ref, 0.01, 0.5) == []


def test_table3_turns_estimates_into_latency_and_device_fractions(scan):
    table, _, _ = scan
    fpga = table3_fpga(table.reset_index(), clock_period_ns=4.0)
    designs = fpga[fpga["source"].str.startswith("estimate")]
    assert designs["design"].tolist() == [NARROW, MID, WIDE] and designs["chosen"].tolist() == [False, True, False]
    assert (designs["latency_ns_estimate"] == 12.0).all() and (designs["inferences_per_s_estimate"] == 2.5e8).all()
    vu9p = designs["lut_fraction_VU9P_estimate"].to_numpy()
    np.testing.assert_allclose(vu9p, np.array([1000.0, 5000.0, 9000.0]) / DEVICES["VU9P (SB-852)"])
    paper = fpga[fpga["source"].str.startswith("paper")]
    assert sorted(paper["latency_ns_estimate"]) == [364.0, 726.0, 748.0]
    assert isinstance(fpga, pd.DataFrame)
