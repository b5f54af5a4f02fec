"""FPGA stage (workflow/rules/fpga.smk): the precision scan, the firmware of the chosen design (hls4ml project,
da4ml Verilog, the emulator-vs-C-simulation check, the FPGA Table 3) and the firmware's predictions; the fake
classifier's scan and firmware."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from l1refit.analysis.metrics import Windows
from l1refit.deploy.fpga import hls, rtl, rtlsim
from l1refit.deploy.fpga.design import Design, build_design
from l1refit.deploy.fpga.emulate import emulate
from l1refit.deploy.fpga.fakeid import (
    FakeDesign,
    build_fakeid_design,
    chosen_precision,
    fakeid_precision_scan,
    firmware_features,
)
from l1refit.deploy.fpga.firmware import FirmwareModel, firmware_model, firmware_of_design
from l1refit.deploy.fpga.qat import QatSettings, qat_finetune
from l1refit.deploy.fpga.rtlsim import VerilatorMissing
from l1refit.deploy.fpga.scan import POST_TRAINING, QatDesigns, firmware_corrected, precision_scan
from l1refit.deploy.fpga.table3 import DEVICES, table3_fpga
from l1refit.formats.output import atomic_path, write_csv
from l1refit.ml.checkpoint import TrainedModel
from l1refit.ml.fakeid import FakeClassifier
from l1refit.stages.fakeid import cut_thresholds, read_candidates
from l1refit.stages.folds import fold_number, job_seed, split_rows, with_predictions, write_predictions

log = logging.getLogger(__name__)


def fpga_precision(*, fold_models: list[str], fold_predictions: list[str], fpga: dict, metrics: dict, table: str,
                   final_model: str | None = None, mass_predictions: str | None = None,
                   qat_designs: list[str] | None = None, qat_final: str | None = None) -> None:  # fmt: skip
    """The precision scan (``fpga_precision.csv``): physics and resources per design (post-training, and the
    quantisation-aware one when ``qat_designs`` are given), the chosen one marked."""
    models = [TrainedModel.load(path) for path in fold_models]
    rows = [pd.read_parquet(path) for path in fold_predictions]
    mass = None
    if mass_predictions is not None:
        frame = pd.read_parquet(mass_predictions)
        if "reco_pt" in frame:  # a scouting mass dataset has no offline muons to measure against
            mass = (TrainedModel.load(final_model), frame)
    qat = None
    if qat_designs:
        qat = QatDesigns([Design.load(path) for path in qat_designs], Design.load(qat_final) if qat_final else None)

    def resources(design: Design) -> dict[str, float]:
        log.info("da4ml estimate of %s", design.precision)
        return rtl.estimate(rtl.trace(design), fpga["latency_cutoff"])

    with threadpool_limits(1):
        scan = _scan(models, rows, fpga, metrics, mass, qat, resources)
    write_csv(scan, table)
    chosen = scan[scan["chosen"]]
    log.info("chosen design: %s", chosen["precision"].iloc[0] if len(chosen) else "none within tolerance")


def _scan(models, rows, fpga: dict, metrics: dict, mass, qat, resources) -> pd.DataFrame:
    return precision_scan(
        models, rows, fpga["precisions"], units=fpga["units"], windows=Windows.from_config(metrics), mass=mass, qat=qat,
        rms_tolerance=fpga["rms_tolerance"], point_tolerance=fpga["point_tolerance"],
        resources=resources if fpga["resources"] else None,
    )  # fmt: skip


def chosen_design(scan: pd.DataFrame) -> tuple[str, str]:
    """(precision, training) of the scan's chosen design, or of its widest post-training one (with a warning)
    when none stays within the tolerances."""
    chosen = scan[scan["chosen"].astype(bool)]
    if len(chosen):
        return str(chosen["precision"].iloc[0]), str(chosen["training"].iloc[0])
    widest = str(scan.loc[scan["training"] == POST_TRAINING, "precision"].iloc[-1])
    log.warning("no design stays within the tolerances; the firmware uses the widest scanned, %s", widest)
    return widest, POST_TRAINING


def _firmware(training: str, precision: str, model: str, qat_design: str | None, units: str) -> FirmwareModel:
    """The firmware model the chosen design is built from: the float network's, or the quantisation-aware one's
    constants (checked to give the same design back)."""
    if training == POST_TRAINING:
        return firmware_model(TrainedModel.load(model), units=units)
    if qat_design is None:
        raise ValueError("the chosen design is quantisation-aware, but no quantisation-aware design was given")
    saved = Design.load(qat_design)
    firmware = firmware_of_design(saved)
    if build_design(firmware, precision).to_dict() != saved.to_dict():
        raise RuntimeError(f"{qat_design}: its constants do not give the same design at {precision}")
    return firmware


def _fold_design(scan: str, model: str, qat_design: str | None, units: str) -> Design:
    precision, training = chosen_design(pd.read_csv(scan))
    return build_design(_firmware(training, precision, model, qat_design, units), precision)


def fpga_firmware(*, model: str, scan: str, skim: str, fpga: dict, hls_dir: str, rtl_dir: str, design: str,
                  table3: str, qat_design: str | None = None) -> None:  # fmt: skip
    """The chosen design's hls4ml project (compiled; its C simulation must equal the emulator bit for bit on
    ``check_rows`` skim rows, else the rule fails), its da4ml Verilog, ``design.json`` and the FPGA Table 3."""
    scan_table = pd.read_csv(scan)
    precision, training = chosen_design(scan_table)
    log.info("chosen design: %s (%s)", precision, training)
    firmware = _firmware(training, precision, model, qat_design, fpga["units"])
    rows = pd.read_parquet(skim, columns=list(firmware.inputs)).head(fpga["check_rows"])
    hw = rows.to_numpy()
    built = build_design(firmware, precision)
    _write_firmware(built, hw, fpga, hls_dir, rtl_dir, "skim rows")
    built.save(design)  # atomic
    write_csv(table3_fpga(scan_table, fpga["clock_period_ns"]), table3)


def _write_firmware(built, hw, fpga: dict, hls_dir: str, rtl_dir: str, rows: str) -> None:
    """The hls4ml project of a built design (regression or fake classifier) in ``hls_dir``, its C simulation
    checked against the emulator bit for bit on ``hw``, and da4ml's Verilog in ``rtl_dir`` (its logic checked
    against the C simulation too); a RuntimeError on any differing bit."""
    for directory in (hls_dir, rtl_dir):
        shutil.rmtree(directory, ignore_errors=True)
    hls_model = hls.convert_design(built, hls_dir, part=fpga["part"], clock_period=fpga["clock_period_ns"])
    n = hls.check_bit_exact(built, hls_model, hw)
    log.info("emulator == hls4ml C simulation on %d %s, bit for bit (%s)", n, rows, built.precision)
    comb = rtl.trace(built)
    if not (rtl.predict(comb, built, hw) == hls.csim(hls_model, hw).reshape(len(hw), -1)).all():
        raise RuntimeError(f"design {built.precision}: da4ml's logic and the hls4ml C simulation differ")
    rtl.write_verilog(comb, rtl_dir, latency_cutoff=fpga["latency_cutoff"], clock_period=fpga["clock_period_ns"],
                      part=fpga["part"])  # fmt: skip
    check = {"precision": built.precision, "rows_checked": n}
    (Path(hls_dir) / "l1refit_check.json").write_text(json.dumps(check) + "\n")


def fpga_rtl_simulation(*, rtl_dir: str, design: str, skim: str, fpga: dict, result: str, threads: int = 1) -> None:
    """Verilator simulation of the Verilog on ``check_rows`` skim rows, required to equal the emulator bit for bit
    (else the rule fails); ``result`` records passed, or skipped and why (``fpga.rtl_simulation``)."""
    mode = fpga["rtl_simulation"]
    record: dict = {"mode": mode}
    try:
        if mode == "off":
            raise VerilatorMissing("fpga.rtl_simulation is off")
        record["verilator"] = rtlsim.verilator_version()
    except VerilatorMissing as err:
        if mode == "required":
            raise
        record |= {"status": "skipped", "why": str(err)}
        log.warning("RTL simulation skipped: %s", err)
    else:
        built = Design.load(design)
        hw = pd.read_parquet(skim, columns=list(built.inputs)).head(fpga["check_rows"]).to_numpy()
        log.info("verilating %s (%s) and simulating %d skim rows", rtl_dir, record["verilator"], len(hw))
        got, want = rtlsim.simulate(rtl_dir, rtl.trace(built), hw, jobs=threads), emulate(built, hw)
        differ = np.any(got != want, axis=1)
        if differ.any():
            first = int(np.argmax(differ))
            raise RuntimeError(
                f"{rtl_dir}: the RTL simulation differs from the emulator on {int(differ.sum())} of {len(hw)} rows; "
                f"first {hw[first].tolist()}: {got[first]} vs {want[first]}"
            )
        record |= {"status": "passed", "rows": len(hw), "precision": built.precision}
        log.info("RTL simulation == emulator on %d rows, bit for bit", len(hw))
    with atomic_path(result) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n")


def fpga_qat(*, model: str, skim: str, training: dict, split: str, fpga: dict, design: str, history: str) -> None:
    """Fine-tune one network of the analysis model (fold ``split`` or ``final``) quantisation-aware on the rows it
    was trained on, at ``fpga.qat.precision``; save the design and the fine-tuning history."""
    fold = fold_number(split)
    train_df, _ = split_rows(pd.read_parquet(skim), training, fold)
    trained = TrainedModel.load(model)
    qat = fpga["qat"]
    settings = QatSettings(
        epochs=qat["epochs"], learning_rate=qat["learning_rate"], batch_size=training["batch_size"],
        patience=qat["patience"], validation_fraction=training["validation_fraction"], seed=job_seed(training, fold),
    )  # fmt: skip
    log.info("quantisation-aware fine-tuning of %s (%s) on %d muons at %s", model, split, len(train_df),
             qat["precision"])  # fmt: skip
    with threadpool_limits(1):
        tuned, hist = qat_finetune(trained, firmware_model(trained, units=fpga["units"]), qat["precision"], train_df,
                                   settings)  # fmt: skip
    write_csv(hist, history)
    build_design(tuned, qat["precision"]).save(design)


def fpga_fold_predict(*, skim: str, training: dict, fold: int, predictions: str, design: str | None = None,
                      scan: str | None = None, model: str | None = None, qat_design: str | None = None,
                      units: str = "hardware") -> None:  # fmt: skip
    """Out-of-fold predictions of a fixed-point design: ``design`` (a saved one), or the scan's chosen design of
    this fold's network (``scan``, ``model`` and, if the choice is quantisation-aware, ``qat_design``)."""
    built = Design.load(design) if design is not None else _fold_design(scan, model, qat_design, units)
    _, test_df = split_rows(pd.read_parquet(skim), training, fold)
    with threadpool_limits(1):
        values = firmware_corrected(built, test_df)
    pred = {"pred_phi": values[:, 0], "pred_eta": values[:, 1], "pred_pt": values[:, 2]}
    write_predictions(with_predictions(test_df, pred), predictions)
    log.info("fold %d: %d muons corrected by the emulated design %s", fold, len(test_df), built.precision)


def fpga_predict(*, design: str, skim: str, predictions: str) -> None:
    """The emulated firmware applied to every row of a skim: the board's corrected values, bit for bit."""
    built = Design.load(design)
    rows = pd.read_parquet(skim)
    with threadpool_limits(1):  # the job has one core: BLAS threads would only compete for it
        values = firmware_corrected(built, rows)
    pred = {"pred_phi": values[:, 0], "pred_eta": values[:, 1], "pred_pt": values[:, 2]}
    write_predictions(with_predictions(rows, pred), predictions)
    log.info("%s: %d muons corrected by the emulated firmware %s", skim, len(rows), built.precision)


def fpga_fakeid(*, models: list[str], final_model: str, candidates: str, oof: str, fakeid: dict, fpga: dict,
                training: dict, selection: dict, table: str, folds_table: str, design: str, hls_dir: str,
                rtl_dir: str) -> None:  # fmt: skip
    """The fake classifier as firmware: the precision scan out of fold (``table``: mean per design, with
    resources; ``folds_table``: per fold), then the chosen design of the classifier trained on all folds, with the
    comparator constants of the working points (thresholds from the float classifier's out-of-fold probabilities),
    as an hls4ml project whose C simulation must equal the emulator bit for bit, da4ml Verilog, and ``design``."""
    frame = read_candidates(candidates)
    folds = [(FakeClassifier.load(path), split_rows(frame, training, fold)[1]) for fold, path in enumerate(models)]

    def resources(built: FakeDesign) -> dict[str, float]:
        log.info("da4ml estimate of the fake classifier at %s", built.precision)
        return rtl.estimate(rtl.trace(built), fpga["latency_cutoff"])

    settings = fakeid["fpga"]
    with threadpool_limits(1):
        per_fold, summary = fakeid_precision_scan(
            folds, settings["precisions"], efficiencies=tuple(fakeid["efficiencies"]),
            auc_tolerance=settings["auc_tolerance"], rejection_tolerance=settings["rejection_tolerance"],
            resources=resources if fpga["resources"] else None,
        )  # fmt: skip
    if "stages" in summary:  # fully pipelined, II = 1: one clock per stage
        summary["latency_ns_estimate"] = summary["stages"] * fpga["clock_period_ns"]
        for device, luts in DEVICES.items():
            summary[f"lut_fraction_{device.split()[0]}_estimate"] = summary["luts_estimate"] / luts
    precision = chosen_precision(summary)
    log.info("fake classifier designs, out of fold:\n%s", summary.to_string(index=False))
    if not summary["chosen"].any():
        log.warning("no fake-ID design within AUC %.4g and rejection %.4g of the float network; using the widest, %s",
                    settings["auc_tolerance"], settings["rejection_tolerance"], precision)  # fmt: skip
    cuts = cut_thresholds(oof=oof, efficiencies=fakeid["efficiencies"])
    classifier = FakeClassifier.load(final_model)
    built = build_fakeid_design(classifier, precision, selection=selection, cuts=cuts)
    hw = firmware_features(frame.head(fpga["check_rows"]), built.inputs)
    _write_firmware(built, hw, fpga, hls_dir, rtl_dir, "fake-ID candidates")
    built.save(design)  # atomic
    write_csv(per_fold, folds_table)
    write_csv(summary, table)
