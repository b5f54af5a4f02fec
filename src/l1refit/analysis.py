"""The analysis stage as the workflow runs it: predictions in, figures and tables out (one call per job).

* :func:`run_fig2`: paper Figure 2 from the out-of-fold predictions of the analysis model (every fold, so each
  muon is predicted by a network that never saw it).
* :func:`run_dimuon`: paper Figure 3, the resonance fits and their overlay, from the analysis model's final
  network applied to the mass dataset (MuOnia).
* :func:`run_turn_on`: turn-on curves with GMT and network pT, from the out-of-fold predictions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .dimuon import SOURCES, pair_masses
from .efficiency import turn_on_table
from .errors import FormatError
from .fit import fit_table
from .io import write_csv
from .metrics import Windows
from .plots import fig2_residuals, fig3_mass, resonance_overlay, turn_on_plot


def _read_all(paths) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        raise ValueError("no prediction files given")
    return pd.concat(frames, ignore_index=True)


def run_fig2(prediction_paths, *, model: str, metrics_config: dict, dataset: str, simulation: bool, stem) -> None:
    """Figure 2 (``stem``.png/.pdf) from the out-of-fold predictions of ``model``."""
    df = _read_all(prediction_paths)
    min_pt = float(metrics_config.get("fig2_min_l1_pt", 3.0))
    _, rms = fig2_residuals(df, stem, model=model, windows=Windows.from_config(metrics_config), min_l1_pt=min_pt,
                         dataset=dataset, simulation=simulation)  # fmt: skip
    n = int((df["l1_pt"] >= min_pt).sum())
    print(f"Figure 2: {n} muons with L1 pT >= {min_pt:g} GeV; RMS {rms}", flush=True)


def run_dimuon(prediction_path, *, model: str, resonances, mass_range, bins: int, dataset: str, simulation: bool,
               fig3_stem, overlay_stem, table_path) -> pd.DataFrame:  # fmt: skip
    """Figure 3, ``resonances.csv`` and the fit overlay from one prediction file of the mass dataset.

    ``resonances`` maps each resonance to fit (:data:`l1refit.fit.FAMILIES`) to its fit window in GeV.
    """
    df = pd.read_parquet(prediction_path)
    # scouting data have no offline muons: GMT and NN masses only (the fits then leave excited fractions free)
    sources = [s for s, cols in SOURCES.items() if s != "offline" or set(cols) <= set(df.columns)]
    try:
        masses = pair_masses(df, sources=tuple(sources))
    except ValueError as err:
        raise FormatError(prediction_path, str(err)) from None
    print(f"{len(masses['GMT'])} opposite-charge pairs from {len(df)} muons", flush=True)
    if len(masses["GMT"]) == 0:
        raise ValueError(f"{prediction_path}: no opposite-charge muon pairs in the same event; Figure 3 needs dimuons")
    low, high = (float(v) for v in mass_range)
    fig3_mass(masses, fig3_stem, model=model, mass_range=(low, high), bins=bins, dataset=dataset,
              simulation=simulation)  # fmt: skip
    table, fits = fit_table(masses, resonances)
    write_csv(table, table_path)
    resonance_overlay(masses, fits, overlay_stem, model=model, dataset=dataset, simulation=simulation)
    with pd.option_context("display.width", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
    for row in table[~table["valid"]].itertuples():
        print(f"warning: the {row.resonance} fit of {row.source} values did not converge", flush=True)
    return table


def run_turn_on(prediction_paths, *, model: str, thresholds, pt_range, bins: int, dataset: str, simulation: bool,
                stem, table_path) -> pd.DataFrame:  # fmt: skip
    """Turn-on curves (plot and table) for each threshold with GMT pT and with the network's pT."""
    df = _read_all(prediction_paths)
    edges = np.linspace(float(pt_range[0]), float(pt_range[1]), int(bins) + 1)
    table = turn_on_table(df, thresholds, edges, {"GMT": "l1_pt", "NN": "pred_pt"})
    write_csv(table, table_path)
    turn_on_plot(table, stem, model=model, dataset=dataset, simulation=simulation)
    print(f"turn-on curves of {len(df)} muons, thresholds {list(thresholds)} GeV", flush=True)
    return table
