"""Quantisation-aware fine-tuning: its forward pass is the emulated firmware, bit for bit, and it learns."""

import numpy as np
import pandas as pd
import pytest
import torch

from l1refit.deploy.fpga.design import build_design
from l1refit.deploy.fpga.emulate import emulate
from l1refit.deploy.fpga.firmware import firmware_model
from l1refit.deploy.fpga.fixed import Precision
from l1refit.deploy.fpga.qat import QatSettings, QuantizedMLP, qat_finetune
from l1refit.deploy.fpga.scan import QUANTISATION_AWARE, QatDesigns, firmware_corrected, precision_scan
from l1refit.stages.folds import with_predictions

NARROW = "ap_fixed<8,4,AP_RND,AP_SAT>;dense4.result=ap_fixed<10,7,AP_RND,AP_SAT>"


@pytest.fixture(scope="module")
def tuned(exported):
    _, _, skim, model = exported
    firmware = firmware_model(model, units="hardware")
    settings = QatSettings(epochs=3, learning_rate=1e-3, batch_size=256, patience=3, seed=3)
    qat, history = qat_finetune(model, firmware, NARROW, skim.iloc[:2400], settings, progress=lambda _: None)
    return skim, model, firmware, qat, history


def _forward(net: QuantizedMLP, hw: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(hw.astype(np.float64))).numpy()


def test_forward_is_the_emulated_design(tuned):
    """Before and after fine-tuning, the training forward pass equals the emulator of build_design, every bit."""
    skim, model, firmware, qat, _ = tuned
    hw = skim[list(firmware.inputs)].to_numpy()
    for fw in (firmware, qat):
        net = QuantizedMLP(fw, Precision.from_string(NARROW), model.x_scaler.scale, np.ones(3))
        assert np.array_equal(_forward(net, hw), emulate(build_design(fw, NARROW), hw))


def test_fine_tuning_lowers_the_quantised_loss(tuned):
    """Epoch 0 is the post-training design; the restored epoch has a lower validation loss and other weights."""
    _, _, firmware, qat, history = tuned
    assert history["epoch"].tolist()[0] == 0 and np.isnan(history["loss"].iloc[0])
    assert history["val_loss"].iloc[1:].min() < history["val_loss"].iloc[0]
    before, after = build_design(firmware, NARROW), build_design(qat, NARROW)
    assert any(not np.array_equal(a.weight, b.weight) for a, b in zip(before.layers, after.layers, strict=True))


def test_fine_tuning_is_reproducible(tuned, exported):
    _, _, skim, model = exported
    firmware = firmware_model(model, units="hardware")
    settings = QatSettings(epochs=3, learning_rate=1e-3, batch_size=256, patience=3, seed=3)
    again, history = qat_finetune(model, firmware, NARROW, skim.iloc[:2400], settings, progress=lambda _: None)
    pd.testing.assert_frame_equal(history, tuned[4])
    assert build_design(again, NARROW).to_dict() == build_design(tuned[3], NARROW).to_dict()


def test_scan_row_of_the_quantisation_aware_designs(tuned):
    """The scan measures the QAT designs like the post-training ones, in a row of their own."""
    skim, model, _, qat, _ = tuned
    rows = with_predictions(skim, model.predict(skim))
    folds = [rows.iloc[:1500].reset_index(drop=True), rows.iloc[1500:].reset_index(drop=True)]
    design = build_design(qat, NARROW)
    table = precision_scan([model, model], folds, [NARROW], qat=QatDesigns([design, design]))
    assert table["training"].tolist() == ["float", "post-training", QUANTISATION_AWARE]
    qat_row = table.iloc[2]
    assert qat_row["precision"] == design.precision
    values = np.concatenate([firmware_corrected(design, f) for f in folds])
    dpt = (values[:, 2] - rows["reco_pt"]) / rows["reco_pt"]
    assert qat_row["pt_rms"] == pytest.approx(np.sqrt(np.mean(dpt**2)), rel=1e-12)
    assert qat_row["pt_rms"] != table.iloc[1]["pt_rms"]
