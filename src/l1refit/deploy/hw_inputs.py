"""Hardware-integer inputs for the graphs: random rows in the skims' ranges, the range edges, skim rows as float32.

Timings use random rows so that reading data is never timed; the graph-equivalence check adds the edges (φ wrap,
η ±, pT low/high, both charges); int8 calibration and the precision metrics use real skim rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from l1refit import scales

# Ranges of the hardware integers in the barrel skims (zero bias and muonia), per input column.
HW_RANGES = {
    "hwPhiAtVtx": (0, scales.HW_PHI_MAX),
    "hwPhi": (0, scales.HW_PHI_MAX),
    "hwEtaAtVtx": (-80, 81),
    "hwEta": (-80, 81),
    "hwPt": (7, 90),
    "charge": (-1, 1),
}


def random_hw(n: int, inputs: Sequence[str] = ("hwPhiAtVtx", "hwEtaAtVtx", "hwPt", "charge"), seed: int = 0):
    """``n`` rows of hardware integers (float32) in the skims' ranges, one column per model input."""
    rng = np.random.default_rng(seed)
    columns = []
    for name in inputs:
        if name not in HW_RANGES:
            raise ValueError(f"random_hw: no hardware range for input {name!r} (known: {', '.join(HW_RANGES)})")
        low, high = HW_RANGES[name]
        columns.append(rng.choice([-1, 1], n) if name == "charge" else rng.integers(low, high + 1, n))
    return np.ascontiguousarray(np.column_stack(columns), dtype=np.float32)


def edge_rows(inputs: Sequence[str]) -> np.ndarray:
    """Every combination of the extremes of each input range (φ 0 and 575 wrap; η ±; pT low/high; both charges)."""
    grids = np.meshgrid(*[np.array(HW_RANGES.get(name, (0, 1)), dtype=np.float32) for name in inputs])
    return np.column_stack([g.ravel() for g in grids])


def hw_rows(rows, inputs: Sequence[str]) -> np.ndarray:
    """``rows`` (a skim DataFrame with the ``inputs`` columns, or an (N, n_inputs) array) as float32 (N, n_inputs)."""
    if isinstance(rows, pd.DataFrame):
        missing = [name for name in inputs if name not in rows.columns]
        if missing:
            raise ValueError(f"calibration rows lack input column(s) {', '.join(missing)}")
        rows = rows[list(inputs)].to_numpy()
    x = np.ascontiguousarray(rows, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(inputs) or len(x) == 0:
        raise ValueError(f"expected a non-empty (N, {len(inputs)}) array of hardware integers, got {x.shape}")
    return x
