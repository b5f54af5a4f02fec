"""The fake classifier as firmware: the folded network, its fixed-point design, the emulator against hls4ml's C
simulation and da4ml's logic, the board's cut, the precision scan, and `refit --fakeid design.json`.

Uses the classifier of tests/deploy/conftest.py (``deployed``), trained on a small synthetic L1Ntuple's candidates.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from l1refit.analysis.fakeid import auc
from l1refit.deploy.fakeid import load_fakeid
from l1refit.deploy.fpga import hls, rtl
from l1refit.deploy.fpga.fakeid import (
    FLOAT,
    N_L1_BX_MAX,
    FakeDesign,
    build_fakeid_design,
    chosen_precision,
    fakeid_dense_layers,
    fakeid_precision_scan,
    firmware_features,
    float_logits,
    sigmoid,
)
from l1refit.deploy.refit import refit_file
from l1refit.errors import L1RefitError
from l1refit.ml.fakeid import LABEL

WIDE = "ap_fixed<16,6,AP_RND,AP_SAT>"
NARROW = "ap_fixed<8,4,AP_RND,AP_SAT>"
PART = "xcvu9p-flga2104-2L-e"


@pytest.fixture(scope="module")
def board(deployed, tmp_path_factory):
    """(design at WIDE with a 0.98 working point, compiled hls4ml model, features of every candidate)."""
    _, _, _, candidates, classifier, _ = deployed
    design = build_fakeid_design(classifier, WIDE, selection={"min_quality": 12}, cuts={0.98: 0.4})
    hls_model = hls.convert_design(design, tmp_path_factory.mktemp("fakeid_hls"), part=PART, clock_period=4.0)
    return design, hls_model, firmware_features(candidates, design.inputs)


def test_folded_network_gives_the_classifier_logits(deployed):
    """The standardisation folded into the first layer changes nothing but float rounding."""
    _, _, _, candidates, classifier, _ = deployed
    x = firmware_features(candidates, classifier.features)
    with torch.inference_mode():
        want = classifier.module.logits(torch.as_tensor(x, dtype=torch.float32))[:, 0].numpy()
    np.testing.assert_allclose(float_logits(fakeid_dense_layers(classifier), x), want, atol=2e-4)
    assert [name for name, *_ in fakeid_dense_layers(classifier)] == ["dense1", "dense2", "dense3"]


def test_design_follows_the_float_classifier_and_a_narrow_one_does_not(deployed, board):
    _, _, _, candidates, classifier, _ = deployed
    design, _, x = board
    is_fake = candidates[LABEL].to_numpy()
    float_prob = classifier.predict_proba(candidates)
    wide = design.probability(x)
    assert np.max(np.abs(wide - float_prob)) < 0.05
    assert auc(is_fake, wide) == pytest.approx(auc(is_fake, float_prob), abs=0.005)
    narrow = build_fakeid_design(classifier, NARROW).probability(x)
    assert np.max(np.abs(narrow - float_prob)) > 0.05  # 8 bits are visibly coarser: the check above can fail


def test_emulator_equals_the_c_simulation_and_da4ml_bit_for_bit(board):
    design, hls_model, x = board
    assert hls.check_bit_exact(design, hls_model, x[:1000]) == 1000
    np.testing.assert_array_equal(design.logits(x[:1000]), hls.csim(hls_model, x[:1000])[:, 0])
    comb = rtl.trace(design)
    np.testing.assert_array_equal(rtl.predict(comb, design, x[:1000])[:, 0], design.logits(x[:1000]))
    assert rtl.estimate(comb, 5.0)["luts_estimate"] > 1000


def test_the_board_cut_is_the_probability_cut(board):
    """fake ⇔ logit mantissa > the working point's constant ⇔ sigmoid(logit) > the probability threshold."""
    design, _, x = board
    board_fake = design.is_fake(x, 0.98)
    assert 0 < board_fake.mean() < 1
    np.testing.assert_array_equal(board_fake, design.probability(x) > 0.4)
    assert design.cut_mantissa(0.5) == 0  # probability > 0.5 ⇔ logit > 0 ⇔ mantissa > 0
    low, high = design.output_type.bounds
    assert design.cut_mantissa(0.0) == low - 1 and design.cut_mantissa(1.0) == high
    with pytest.raises(KeyError, match="no working point 0.95"):
        design.is_fake(x, 0.95)


def test_design_file_round_trip_and_saturated_counts(board, tmp_path):
    design, _, x = board
    design.save(tmp_path / "design.json")
    loaded = FakeDesign.load(tmp_path / "design.json")
    assert loaded.to_dict() == design.to_dict()
    saved = json.loads((tmp_path / "design.json").read_text())
    assert saved["cuts"] == {"0.98": {"fake_prob": 0.4, "logit_mantissa": design.cut_mantissa(0.4)}}
    assert saved["input_types"][design.inputs.index("near_dpt")] == "ap_int<10>"
    crowded = firmware_features({name: np.full(2, 3) for name in design.inputs} | {"n_l1_bx": np.array([3, 40])},
                                design.inputs)  # fmt: skip
    assert crowded[:, design.inputs.index("n_l1_bx")].tolist() == [3, N_L1_BX_MAX]
    bad = x[:3].copy()
    bad[0, design.inputs.index("near_dphi")] = 600  # beyond ap_uint<9>
    with pytest.raises(ValueError, match="near_dphi: value 600"):
        design.logits(bad)


def test_precision_scan_measures_each_design_out_of_fold(deployed):
    _, _, _, candidates, classifier, _ = deployed
    halves = [candidates.iloc[::2], candidates.iloc[1::2]]
    folds = [(classifier, half) for half in halves]
    per_fold, summary = fakeid_precision_scan(folds, [NARROW, WIDE], efficiencies=(0.95, 0.98),
                                              auc_tolerance=0.005, rejection_tolerance=0.01)  # fmt: skip
    assert summary["precision"].tolist() == [FLOAT, NARROW, WIDE]
    wide = build_fakeid_design(classifier, WIDE)
    wide_aucs = [auc(h[LABEL], wide.probability(firmware_features(h, wide.inputs))) for h in halves]
    row = per_fold[per_fold["precision"] == WIDE]
    np.testing.assert_allclose(row["auc"].to_numpy(float), wide_aucs, atol=1e-12)
    float_auc = np.mean([auc(h[LABEL], classifier.predict_proba(h)) for h in halves])
    assert summary["auc_loss"].iloc[2] == pytest.approx(float_auc - np.mean(wide_aucs), abs=1e-12)
    # the 8-bit design loses fake rejection at 95 % (here it even gains AUC: its tied scores share midranks)
    assert summary["rejection_loss"].iloc[1] > 0.01 > summary["rejection_loss"].iloc[2]
    assert summary["chosen"].tolist() == [False, False, True] and chosen_precision(summary) == WIDE
    _, none = fakeid_precision_scan(folds[:1], [NARROW], efficiencies=(0.95,), auc_tolerance=1.0,
                                    rejection_tolerance=0.0)  # fmt: skip
    assert not none["chosen"].any() and chosen_precision(none) == NARROW  # the widest scanned, with a warning


def test_refit_with_the_design_scores_with_the_emulated_board(deployed, exported, board, tmp_path):
    _, ntuple, _, candidates, _, _ = deployed
    design, _, x = board
    design.save(tmp_path / "fakeid.json")
    out = tmp_path / "refit.parquet"
    refit_file(exported[1], ntuple, out, fakeid=tmp_path / "fakeid.json", chunk_size=700)
    refit = pd.read_parquet(out)
    both = refit.merge(candidates.assign(expected=design.probability(x).astype(np.float32)), on=["event", "l1_index"])
    assert len(both) == len(candidates) == refit["fake_prob"].notna().sum()
    np.testing.assert_array_equal(both["fake_prob"], both["expected"])
    import pyarrow.parquet as pq

    assert pq.read_schema(out).metadata[b"l1refit.refit.fakeid_engine"] == b"firmware"
    assert load_fakeid(tmp_path / "fakeid.json").selection.min_quality == 12
    (tmp_path / "regression.json").write_text(json.dumps({"format": "l1refit-fpga-design/1"}))
    with pytest.raises(L1RefitError, match="not a fake-ID FPGA design"):
        load_fakeid(tmp_path / "regression.json")


def test_sigmoid_is_stable():
    np.testing.assert_allclose(sigmoid(np.array([-800.0, 0.0, 800.0])), [0.0, 0.5, 1.0])
