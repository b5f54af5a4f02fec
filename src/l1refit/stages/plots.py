"""Analysis stage (workflow/rules/plots.smk): paper Figures 2 and 3, the resonance fits, the turn-on curves.

Figure 2 and the turn-on curves use the out-of-fold predictions (no muon judged by a network that saw it);
Figure 3 applies the final network (trained on all folds) to the mass dataset, which it never saw. Each function
imports the analysis and plotting modules it uses itself: a job loads only those (matplotlib, iminuit, torch take
seconds to import, paid by every job that imports this module).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from l1refit.analysis.metrics import Windows
from l1refit.errors import FormatError
from l1refit.formats.output import write_csv
from l1refit.stages.folds import with_fake_prob, with_predictions, write_predictions

log = logging.getLogger(__name__)


def figure_stem(png: str, pdf: str) -> str:
    """The common stem of a figure's PNG and PDF outputs (the plot functions write both beside each other)."""
    stem = Path(png).with_suffix("")
    if Path(pdf).with_suffix("") != stem or Path(png).suffix != ".png" or Path(pdf).suffix != ".pdf":
        raise ValueError(f"figure outputs {png!r} and {pdf!r} must be STEM.png and STEM.pdf")
    return str(stem)


def _read_all(paths: list[str]) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        raise ValueError("no prediction files given")
    return pd.concat(frames, ignore_index=True)


def predict_dataset(*, model: str, skim: str, predictions: str, candidates: str | None = None,
                    classifier: str | None = None) -> None:  # fmt: skip
    """A final model applied to every row of a skim (a dataset it was not trained on, e.g. MuOnia), with the final
    fake classifier's probability (fake identification on)."""
    from l1refit.ml.checkpoint import TrainedModel  # torch: only the job that applies a network pays for it

    rows = pd.read_parquet(skim)
    out = with_predictions(rows, TrainedModel.load(model).predict(rows))
    write_predictions(with_fake_prob(out, candidates, classifier), predictions)
    log.info("%s: %d muons predicted by %s", skim, len(rows), model)


def fig2(*, predictions: list[str], model: str, metrics: dict, dataset: str, simulation: bool, png: str,
         pdf: str, firmware_predictions: list[str] | None = None) -> None:  # fmt: skip
    """Figure 2 from the out-of-fold predictions of ``model`` (and of its chosen firmware design, when the FPGA
    stage ran: the same rows, fold by fold)."""
    from l1refit.analysis.plots import fig2_residuals

    df = _read_all(predictions)
    if firmware_predictions:
        firmware = _read_all(firmware_predictions)
        if len(firmware) != len(df) or not np.array_equal(firmware["l1_pt"].to_numpy(), df["l1_pt"].to_numpy()):
            raise ValueError(f"{firmware_predictions[0]} …: not the rows of {predictions[0]} …")
        for v in ("pt", "eta", "phi"):
            df[f"fpga_{v}"] = firmware[f"pred_{v}"].to_numpy()
    min_pt = float(metrics["fig2_min_l1_pt"])
    _, rms = fig2_residuals(df, figure_stem(png, pdf), model=model, windows=Windows.from_config(metrics),
                            min_l1_pt=min_pt, dataset=dataset, simulation=simulation)  # fmt: skip
    log.info("Figure 2: %d muons with L1 pT >= %g GeV; RMS %s", int((df["l1_pt"] >= min_pt).sum()), min_pt, rms)


def dimuon(*, predictions: str, model: str, plots: dict, dataset: str, simulation: bool, fig3_png: str,
           fig3_pdf: str, table: str, overlay_png: str, overlay_pdf: str, firmware_predictions: str | None = None,
           zerobias_predictions: str | None = None, limit_predictions: str | None = None) -> pd.DataFrame:  # fmt: skip
    """Figure 3, ``resonances.csv`` and the fit overlay from the network's predictions on the mass dataset, with
    the other sources of the same muons when given: the emulated firmware (``FPGA``), the unweighted network when
    ``predictions`` are the reweighted one's (``NN (ZeroBias)``), the per-cell optimum (``limit``); and the
    pT-only and angles-only versions of NN and limit (resonances.csv only: where the mass resolution goes)."""
    from l1refit.analysis.dimuon import FIGURE_SOURCES, SOURCES, pair_masses
    from l1refit.analysis.fit import fit_table, fitted_windows
    from l1refit.analysis.plots import fig3_mass, resonance_overlay

    df = pd.read_parquet(predictions)
    for prefix, path in (("fpga", firmware_predictions), ("zb", zerobias_predictions), ("limit", limit_predictions)):
        if path is None:
            continue
        other = pd.read_parquet(path, columns=["pred_pt", "pred_eta", "pred_phi"])
        if len(other) != len(df):
            raise ValueError(f"{path}: {len(other)} rows, but {predictions} has {len(df)}")
        for v in ("pt", "eta", "phi"):
            df[f"{prefix}_{v}"] = other[f"pred_{v}"].to_numpy()
    # scouting data have no offline muons: GMT and NN masses only (the fits then leave excited fractions free)
    sources = [s for s, cols in SOURCES.items() if set(cols) <= set(df.columns) or s in ("GMT", "NN")]
    if limit_predictions is None:  # the pT/angle split is measured against the limit, on data with offline muons
        sources = [s for s in sources if not s.endswith(" only")]
    try:
        masses = pair_masses(df, sources=tuple(sources))
    except ValueError as err:
        raise FormatError(predictions, str(err)) from None
    log.info("%d opposite-charge pairs from %d muons", len(masses["GMT"]), len(df))
    if len(masses["GMT"]) == 0:
        raise ValueError(f"{predictions}: no opposite-charge muon pairs in the same event; Figure 3 needs dimuons")
    low, high = (float(v) for v in plots["mass_range"])
    shown = {s: m for s, m in masses.items() if s in FIGURE_SOURCES}
    nn_label = f"NN ({model}, reweighted to {dataset})" if zerobias_predictions is not None else None
    fig3_mass(shown, figure_stem(fig3_png, fig3_pdf), model=model, mass_range=(low, high), bins=plots["mass_bins"],
              dataset=dataset, simulation=simulation, nn_label=nn_label)  # fmt: skip
    fits_table, fits = fit_table(masses, fitted_windows(plots["resonances"]))
    write_csv(fits_table, table)
    resonance_overlay(shown, [f for f in fits if f.source in FIGURE_SOURCES], figure_stem(overlay_png, overlay_pdf),
                      model=model, dataset=dataset, simulation=simulation, nn_label=nn_label)  # fmt: skip
    with pd.option_context("display.width", 200):
        log.info("resonances:\n%s", fits_table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for row in fits_table[~fits_table["valid"]].itertuples():
        log.warning("the %s fit of %s values did not converge", row.resonance, row.source)
    return fits_table


def turn_on(*, predictions: list[str], model: str, plots: dict, dataset: str, simulation: bool, png: str, pdf: str,
            table: str) -> pd.DataFrame:  # fmt: skip
    """Turn-on curves (plot and table) for each threshold with GMT pT and with the network's pT."""
    from l1refit.analysis.efficiency import turn_on_table
    from l1refit.analysis.plots import turn_on_plot

    df = _read_all(predictions)
    low, high = plots["turn_on_pt_range"]
    edges = np.linspace(float(low), float(high), int(plots["turn_on_bins"]) + 1)
    curves = turn_on_table(df, plots["turn_on_thresholds"], edges, {"GMT": "l1_pt", "NN": "pred_pt"})
    write_csv(curves, table)
    turn_on_plot(curves, figure_stem(png, pdf), model=model, dataset=dataset, simulation=simulation)
    log.info("turn-on curves of %d muons, thresholds %s GeV", len(df), list(plots["turn_on_thresholds"]))
    return curves
