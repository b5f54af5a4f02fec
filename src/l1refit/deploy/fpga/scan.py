"""The precision scan: what each fixed-point design costs in physics (the paper's Table-2 metrics of the firmware's
corrections) and in FPGA resources, and the narrowest design that costs no physics.

Out-of-fold: every fold's network, as firmware, corrects the muons it did not see (the float network's out-of-fold
predictions are the reference); the final network corrects the mass dataset. Emulated bit for bit
(:mod:`.emulate`), so these are the numbers the board would give.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from l1refit.analysis.metrics import METRIC_COLUMNS, Windows, metrics, residuals
from l1refit.deploy.fpga.design import Design, build_design
from l1refit.deploy.fpga.emulate import emulate
from l1refit.deploy.fpga.firmware import firmware_model
from l1refit.deploy.fpga.fixed import Precision
from l1refit.deploy.fpga.hardware import corrected
from l1refit.ml.checkpoint import TrainedModel

FLOAT = "float"  # the reference row: the float network


def firmware_corrected(design: Design, rows: pd.DataFrame) -> np.ndarray:
    """(N, 3) corrected φ, η, pT of ``rows`` (skim columns) as the emulated firmware computes them."""
    hw = rows[list(design.inputs)].to_numpy()
    return corrected(hw, design.physical(emulate(design, hw)), design.inputs, design.pt_target)


def _metrics(values: np.ndarray, rows: pd.DataFrame, windows: Windows) -> dict[str, float]:
    reco = [rows[f"reco_{v}"].to_numpy() for v in ("phi", "eta", "pt")]
    return metrics(residuals(values[:, 0], values[:, 1], values[:, 2], *reco), windows)


def _float(rows: pd.DataFrame) -> np.ndarray:
    return rows[["pred_phi", "pred_eta", "pred_pt"]].to_numpy(np.float64)


def width_of(precision: str) -> int:
    """Total bits of a design's layer results (the base width): what "narrowest" orders by."""
    return Precision.from_string(precision).width


def within(row: dict, reference: dict, rms_tolerance: float, point_tolerance: float) -> list[str]:
    """The metrics where ``row`` is worse than ``reference`` by more than the tolerances (empty: it costs no
    physics). One-sided: a larger RMS or tail, or a smaller core, is a cost; the other direction is not (a
    quantisation-aware design can beat the float network it was fine-tuned from)."""
    bad = []
    for column in METRIC_COLUMNS:
        worse = row[column] - reference[column]
        if column.endswith("_core"):
            worse = -worse
        limit = rms_tolerance * abs(reference[column]) if column.endswith("_rms") else point_tolerance
        if worse > limit:
            bad.append(column)
    return bad


POST_TRAINING = "post-training"
QUANTISATION_AWARE = "quantisation-aware"


@dataclass
class QatDesigns:
    """The quantisation-aware designs of one precision: one per fold network and (optionally) the final one."""

    folds: list[Design]
    final: Design | None = None


def _deviation(values: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    deviation = values - reference
    deviation[:, 0] = (deviation[:, 0] + np.pi) % (2 * np.pi) - np.pi
    out = {}
    for j, name in enumerate(("phi", "eta", "pt")):
        out[f"{name}_max_dev"] = float(np.max(np.abs(deviation[:, j])))
        out[f"{name}_rms_dev"] = float(np.sqrt(np.mean(deviation[:, j] ** 2)))
    return out


def precision_scan(
    fold_models: Sequence[TrainedModel],
    fold_rows: Sequence[pd.DataFrame],
    precisions: Sequence[str],
    *,
    units: str = "hardware",
    windows: Windows | None = None,
    mass: tuple[TrainedModel, pd.DataFrame] | None = None,
    qat: QatDesigns | None = None,
    rms_tolerance: float = 0.01,
    point_tolerance: float = 0.5,
    resources: Callable[[Design], dict[str, float]] | None = None,
) -> pd.DataFrame:
    """One row per precision (and the float reference): Table-2 metrics out of fold (and ``mass_*`` on the mass
    dataset with the final network), the max/RMS deviation of the corrected values from the float network's, the
    resource estimate of the fold-0 design, and ``chosen``: the narrowest design within the tolerances.
    ``qat`` adds the quantisation-aware designs as one more row (``training``), measured the same way."""
    windows = windows or Windows.from_config(None)
    all_rows = pd.concat(fold_rows, ignore_index=True)
    reference = {"precision": FLOAT, "training": "float", **_metrics(_float(all_rows), all_rows, windows)}
    if mass is not None:
        reference |= {f"mass_{k}": v for k, v in _metrics(_float(mass[1]), mass[1], windows).items()}
    firmwares = [firmware_model(model, units=units) for model in fold_models]

    def row(designs: list[Design], final: Design | None, training: str) -> dict:
        values = np.concatenate([firmware_corrected(d, r) for d, r in zip(designs, fold_rows, strict=True)])
        out = {"precision": designs[0].precision, "training": training, **_metrics(values, all_rows, windows)}
        out |= _deviation(values, _float(all_rows))
        if mass is not None and final is not None:
            out |= {f"mass_{k}": v for k, v in _metrics(firmware_corrected(final, mass[1]), mass[1], windows).items()}
        if resources is not None:
            out |= resources(designs[0])
        return out

    out = [reference]
    for precision in precisions:
        final = build_design(firmware_model(mass[0], units=units), precision) if mass is not None else None
        out.append(row([build_design(fw, precision) for fw in firmwares], final, POST_TRAINING))
    if qat is not None:
        if len(qat.folds) != len(fold_rows):
            raise ValueError(f"{len(qat.folds)} quantisation-aware fold designs for {len(fold_rows)} folds")
        out.append(row(list(qat.folds), qat.final, QUANTISATION_AWARE))
    table = pd.DataFrame(out)
    return _choose(table, rms_tolerance, point_tolerance)


def _choose(table: pd.DataFrame, rms_tolerance: float, point_tolerance: float) -> pd.DataFrame:
    """Mark the narrowest precision whose out-of-fold metrics stay within the tolerances of the float network's."""
    reference = table.iloc[0].to_dict()
    why, ok = [], []
    for _, row in table.iterrows():
        if row["precision"] == FLOAT:
            why.append("the float network (reference)")
            ok.append(False)
            continue
        bad = within(row.to_dict(), reference, rms_tolerance, point_tolerance)
        ok.append(not bad)
        why.append("within tolerance" if not bad else "off: " + ", ".join(bad))
    table["within_tolerance"] = ok
    table["chosen"] = False
    candidates = [i for i in table.index if ok[i]]
    if candidates:
        best = min(candidates, key=lambda i: (width_of(table.loc[i, "precision"]), i))
        table.loc[best, "chosen"] = True
        why[best] = (f"chosen: the narrowest design with no RMS {100 * rms_tolerance:g} % and no core/tail "
                     f"{point_tolerance:g} points worse than the float network")  # fmt: skip
    table["why"] = why
    return table
