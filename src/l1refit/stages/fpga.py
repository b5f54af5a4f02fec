"""FPGA stage (workflow/rules/fpga.smk): the precision scan, the firmware of the chosen design (hls4ml project,
da4ml Verilog, the emulator-vs-C-simulation check, the FPGA Table 3) and the firmware's predictions."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from l1refit.analysis.metrics import Windows
from l1refit.deploy.fpga import hls, rtl
from l1refit.deploy.fpga.design import Design, build_design
from l1refit.deploy.fpga.firmware import firmware_model
from l1refit.deploy.fpga.scan import firmware_corrected, precision_scan
from l1refit.deploy.fpga.table3 import table3_fpga
from l1refit.formats.output import write_csv
from l1refit.ml.checkpoint import TrainedModel
from l1refit.stages.folds import with_predictions, write_predictions

log = logging.getLogger(__name__)


def fpga_precision(*, fold_models: list[str], fold_predictions: list[str], fpga: dict, metrics: dict, table: str,
                   final_model: str | None = None, mass_predictions: str | None = None) -> None:  # fmt: skip
    """The precision scan (``fpga_precision.csv``): physics and resources per design, the chosen one marked."""
    models = [TrainedModel.load(path) for path in fold_models]
    rows = [pd.read_parquet(path) for path in fold_predictions]
    mass = None
    if mass_predictions is not None:
        frame = pd.read_parquet(mass_predictions)
        if "reco_pt" in frame:  # a scouting mass dataset has no offline muons to measure against
            mass = (TrainedModel.load(final_model), frame)

    def resources(design: Design) -> dict[str, float]:
        log.info("da4ml estimate of %s", design.precision)
        return rtl.estimate(rtl.trace(design), fpga["latency_cutoff"])

    with threadpool_limits(1):
        scan = _scan(models, rows, fpga, metrics, mass, resources)
    write_csv(scan, table)
    chosen = scan[scan["chosen"]]
    log.info("chosen design: %s", chosen["precision"].iloc[0] if len(chosen) else "none within tolerance")


def _scan(models, rows, fpga: dict, metrics: dict, mass, resources) -> pd.DataFrame:
    return precision_scan(
        models, rows, fpga["precisions"], units=fpga["units"], windows=Windows.from_config(metrics), mass=mass,
        rms_tolerance=fpga["rms_tolerance"], point_tolerance=fpga["point_tolerance"],
        resources=resources if fpga["resources"] else None,
    )  # fmt: skip


def chosen_precision(scan: pd.DataFrame) -> str:
    """The scan's chosen design, or its widest one (with a warning) when none stays within the tolerances."""
    chosen = scan[scan["chosen"].astype(bool)]
    if len(chosen):
        return str(chosen["precision"].iloc[0])
    widest = str(scan["precision"].iloc[-1])
    log.warning("no design stays within the tolerances; the firmware uses the widest scanned, %s", widest)
    return widest


def fpga_firmware(*, model: str, scan: str, skim: str, fpga: dict, hls_dir: str, rtl_dir: str, design: str,
                  table3: str) -> None:  # fmt: skip
    """The chosen design's hls4ml project (compiled; its C simulation must equal the emulator bit for bit on
    ``check_rows`` skim rows, else the rule fails), its da4ml Verilog, ``design.json`` and the FPGA Table 3."""
    scan_table = pd.read_csv(scan)
    precision = chosen_precision(scan_table)
    firmware = firmware_model(TrainedModel.load(model), units=fpga["units"])
    rows = pd.read_parquet(skim, columns=list(firmware.inputs)).head(fpga["check_rows"])
    hw = rows.to_numpy()
    for directory in (hls_dir, rtl_dir):
        shutil.rmtree(directory, ignore_errors=True)
    hls_model = hls.convert(firmware, precision, hls_dir, part=fpga["part"], clock_period=fpga["clock_period_ns"])
    built = build_design(firmware, precision)
    n = hls.check_bit_exact(built, hls_model, hw)
    log.info("emulator == hls4ml C simulation on %d skim rows, bit for bit (%s)", n, precision)
    comb = rtl.trace(built)
    if not (rtl.predict(comb, built, hw) == hls.csim(hls_model, hw).reshape(len(hw), -1)).all():
        raise RuntimeError(f"design {precision}: da4ml's logic and the hls4ml C simulation differ")
    rtl.write_verilog(comb, rtl_dir, latency_cutoff=fpga["latency_cutoff"], clock_period=fpga["clock_period_ns"],
                      part=fpga["part"])  # fmt: skip
    built.save(design)  # atomic
    write_csv(table3_fpga(scan_table, fpga["clock_period_ns"]), table3)
    (Path(hls_dir) / "l1refit_check.json").write_text(json.dumps({"precision": precision, "rows_checked": n}) + "\n")


def fpga_predict(*, design: str, skim: str, predictions: str) -> None:
    """The emulated firmware applied to every row of a skim: the board's corrected values, bit for bit."""
    built = Design.load(design)
    rows = pd.read_parquet(skim)
    with threadpool_limits(1):  # the job has one core: BLAS threads would only compete for it
        values = firmware_corrected(built, rows)
    pred = {"pred_phi": values[:, 0], "pred_eta": values[:, 1], "pred_pt": values[:, 2]}
    write_predictions(with_predictions(rows, pred), predictions)
    log.info("%s: %d muons corrected by the emulated firmware %s", skim, len(rows), built.precision)
