"""The precision scan: what each fixed-point design costs in physics (the paper's Table-2 metrics of the firmware's
corrections) and in FPGA resources, and the narrowest design that costs no physics.

Out-of-fold: every fold's network, as firmware, corrects the muons it did not see (the float network's out-of-fold
predictions are the reference); the final network corrects the mass dataset. Emulated bit for bit
(:mod:`.emulate`), so these are the numbers the board would give.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    """The metrics where ``row`` is further than the tolerances from ``reference`` (empty: it costs no physics)."""
    bad = []
    for column in METRIC_COLUMNS:
        diff = row[column] - reference[column]
        limit = rms_tolerance * abs(reference[column]) if column.endswith("_rms") else point_tolerance
        if abs(diff) > limit:
            bad.append(column)
    return bad


def precision_scan(
    fold_models: Sequence[TrainedModel],
    fold_rows: Sequence[pd.DataFrame],
    precisions: Sequence[str],
    *,
    units: str = "hardware",
    windows: Windows | None = None,
    mass: tuple[TrainedModel, pd.DataFrame] | None = None,
    rms_tolerance: float = 0.01,
    point_tolerance: float = 0.5,
    resources: Callable[[Design], dict[str, float]] | None = None,
) -> pd.DataFrame:
    """One row per precision (and the float reference): Table-2 metrics out of fold (and ``mass_*`` on the mass
    dataset with the final network), the max/RMS deviation of the corrected values from the float network's, the
    resource estimate of the fold-0 design, and ``chosen``: the narrowest precision within the tolerances."""
    windows = windows or Windows.from_config(None)
    all_rows = pd.concat(fold_rows, ignore_index=True)
    reference = {"precision": FLOAT, **_metrics(_float(all_rows), all_rows, windows)}
    if mass is not None:
        reference |= {f"mass_{k}": v for k, v in _metrics(_float(mass[1]), mass[1], windows).items()}
    firmwares = [firmware_model(model, units=units) for model in fold_models]
    out = [reference]
    for precision in precisions:
        designs = [build_design(fw, precision) for fw in firmwares]
        values = np.concatenate([firmware_corrected(d, r) for d, r in zip(designs, fold_rows, strict=True)])
        row = {"precision": str(Precision.from_string(precision)), **_metrics(values, all_rows, windows)}
        deviation = values - _float(all_rows)
        deviation[:, 0] = (deviation[:, 0] + np.pi) % (2 * np.pi) - np.pi
        for j, name in enumerate(("phi", "eta", "pt")):
            row[f"{name}_max_dev"] = float(np.max(np.abs(deviation[:, j])))
            row[f"{name}_rms_dev"] = float(np.sqrt(np.mean(deviation[:, j] ** 2)))
        if mass is not None:
            final = build_design(firmware_model(mass[0], units=units), precision)
            row |= {f"mass_{k}": v for k, v in _metrics(firmware_corrected(final, mass[1]), mass[1], windows).items()}
        if resources is not None:
            row |= resources(designs[0])
        out.append(row)
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
        why[best] = (f"chosen: the narrowest design whose RMS stay within {100 * rms_tolerance:g} % and core/tail "
                     f"within {point_tolerance:g} points of the float network")  # fmt: skip
    table["why"] = why
    return table
