"""The analysis figures: paper Figures 2 and 3, the resonance-fit overlay and the turn-on curves.

hist histograms drawn with mplhep in the CMS style. Synthetic data carry the "CMS Simulation" label, real data the
plain "CMS" label; the dataset name is on the right. Every figure is written as PNG and PDF, atomically, through
the Agg canvas (no pyplot state, no display needed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import hist
import matplotlib
import mplhep
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from l1refit.analysis.efficiency import half_point
from l1refit.analysis.fit import LABELS, ResonanceFit, pdg_mass
from l1refit.analysis.metrics import Windows, residuals
from l1refit.formats.output import atomic_path

COLORS = {"GMT": "tab:blue", "NN": "tab:red", "offline": "black", "FPGA": "tab:orange", "limit": "tab:green"}
RESIDUAL_AXES = {  # variable: (x label, range)
    "phi": (r"$\Delta\phi = \phi_{L1} - \phi_{offline}$ [rad]", (-0.4, 0.4)),
    "eta": (r"$\Delta\eta = \eta_{L1} - \eta_{offline}$", (-0.12, 0.12)),
    "pt": (r"$(p_{T,L1} - p_{T,offline}) / p_{T,offline}$", (-1.0, 1.5)),
}
MASS_LINES = {"phi": 333, "jpsi": 443, "upsilon1s": 553}  # Figure 3's vertical lines (PDG ids)


@contextlib.contextmanager
def cms_figure(ncols: int = 1, width: float = 10.0, height: float = 8.0) -> Iterator[tuple[Figure, np.ndarray]]:
    """A figure with ``ncols`` axes in the mplhep CMS style (the style stays local to the block)."""
    with matplotlib.style.context(mplhep.style.CMS):
        fig = Figure(figsize=(width * ncols, height), layout="constrained")
        FigureCanvasAgg(fig)
        axes = np.atleast_1d(fig.subplots(1, ncols))
        yield fig, axes


def cms_label(ax, dataset: str, simulation: bool) -> None:
    """The label: "CMS Simulation" on synthetic data, "CMS" on real data; the dataset name on the right."""
    mplhep.cms.label(ax=ax, data=not simulation, text="", rlabel=dataset, loc=0)


def save(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """``stem``.png and ``stem``.pdf (atomic each); returns the paths."""
    out = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=100)
        out.append(path)
    return out


def _residual_hist(values: np.ndarray, variable: str) -> hist.Hist:
    label, (low, high) = RESIDUAL_AXES[variable]
    h = hist.Hist(hist.axis.Regular(120, low, high, name=variable, label=label))
    h.fill(values)
    return h


def fig2_residuals(df: pd.DataFrame, stem, *, model: str, windows: Windows, min_l1_pt: float, dataset: str,
                   simulation: bool) -> tuple[Figure, dict[str, dict[str, float]]]:  # fmt: skip
    """Paper Figure 2: Δφ, Δη, ΔpT/pT of GMT (blue) and the network (red) for L1 pT ≥ ``min_l1_pt``.

    ``df`` holds the out-of-fold predictions of one model (skim columns plus ``pred_*``; ``fpga_*`` add the
    firmware's curve, dashed beside the float network's). Shaded band: the core
    window; dashed lines: the tail thresholds (Table 2's definitions). Returns the figure and the RMS per source and
    variable.
    """
    sel = df[df["l1_pt"] >= min_l1_pt]
    if sel.empty:
        raise ValueError(f"Figure 2: no muons with L1 pT >= {min_l1_pt} GeV")
    reco = (sel["reco_phi"], sel["reco_eta"], sel["reco_pt"])
    res = {
        "GMT": residuals(sel["l1_phi"], sel["l1_eta"], sel["l1_pt"], *reco),
        "NN": residuals(sel["pred_phi"], sel["pred_eta"], sel["pred_pt"], *reco),
    }
    if "fpga_pt" in sel:
        res["FPGA"] = residuals(sel["fpga_phi"], sel["fpga_eta"], sel["fpga_pt"], *reco)
    names = {"GMT": "GMT", "NN": f"NN (model {model})", "FPGA": f"FPGA firmware ({model}, emulated)"}
    rms = {src: {v: float(np.sqrt(np.mean(r[v] ** 2))) for v in RESIDUAL_AXES} for src, r in res.items()}
    with cms_figure(ncols=3, width=8.5) as (fig, axes):
        for ax, variable in zip(axes, RESIDUAL_AXES, strict=True):
            for src, r in res.items():
                h = _residual_hist(r[variable], variable)
                mplhep.histplot(h, ax=ax, color=COLORS[src], lw=2, flow="none", ls="--" if src == "FPGA" else "-",
                                label=f"{names[src]}, RMS {rms[src][variable]:.3g}")  # fmt: skip
            core, tail = windows.core[variable], windows.tail[variable]
            ax.axvspan(-core, core, color="grey", alpha=0.25, label=f"core $\\pm${core:g}")
            for x in (-tail, tail):
                ax.axvline(x, color="grey", ls="--", lw=1.2, label=f"tail $>${tail:g}" if x > 0 else None)
            ax.set_yscale("log")
            ax.set_ylim(top=ax.get_ylim()[1] * 30)  # room for the legend above the peak
            ax.set_ylabel("muons / bin")
            ax.set_xlim(*RESIDUAL_AXES[variable][1])
            ax.legend(fontsize="x-small", loc="upper right")
            cms_label(ax, f"{dataset}, $p_T^{{L1}} \\geq$ {min_l1_pt:g} GeV", simulation)
        save(fig, stem)
    return fig, rms


def _mass_hist(values: np.ndarray, bins: int, low: float, high: float) -> hist.Hist:
    h = hist.Hist(hist.axis.Regular(bins, low, high, name="mass", label=r"$m_{\mu\mu}$ [GeV]"))
    h.fill(values)
    return h


def _mass_figure(curves: list[tuple[np.ndarray, str, str, str]], stem, *, mass_range: tuple[float, float], bins: int,
                 dataset: str, simulation: bool, legend_size: str = "small") -> Figure:  # fmt: skip
    """Dimuon mass histograms ``(masses, colour, label, line style)`` on a log scale with the PDG φ, J/ψ and Υ(1S)
    masses (``particle`` package) as dotted lines; saved as ``stem``.png and .pdf."""
    with cms_figure() as (fig, (ax,)):
        for values, colour, label, style in curves:
            mplhep.histplot(_mass_hist(values, bins, *mass_range), ax=ax, color=colour, lw=2, flow="none", ls=style,
                            label=f"{label} ({len(values)} pairs)")  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylim(top=ax.get_ylim()[1] * 20)
        for key, pdgid in MASS_LINES.items():
            m = pdg_mass(pdgid)
            ax.axvline(m, color="dimgrey", ls=":", lw=1.5)
            ax.text(m + 0.1, 0.03, LABELS[key], color="dimgrey", fontsize="small", transform=ax.get_xaxis_transform())
        ax.set_xlim(*mass_range)
        ax.set_ylabel(f"pairs / {(mass_range[1] - mass_range[0]) / bins:.2g} GeV")
        ax.legend(loc="upper right", fontsize=legend_size)
        cms_label(ax, dataset, simulation)
        save(fig, stem)
    return fig


def fig3_mass(masses: dict[str, np.ndarray], stem, *, model: str, mass_range: tuple[float, float], bins: int,
              dataset: str, simulation: bool, nn_label: str | None = None) -> Figure:  # fmt: skip
    """Paper Figure 3: opposite-charge dimuon mass from GMT, network-corrected and offline values."""
    names = {"GMT": "GMT", "NN": nn_label or f"NN (model {model})", "offline": "offline",
             "FPGA": f"FPGA firmware ({model})", "limit": "limit (per-cell optimum)"}  # fmt: skip
    curves = [(values, COLORS[src], names[src], "-") for src, values in masses.items()]
    return _mass_figure(curves, stem, mass_range=mass_range, bins=bins, dataset=dataset, simulation=simulation)


def fake_cut_mass(masses: dict[str, np.ndarray], stem, *, cut: str, mass_range: tuple[float, float], bins: int,
                  dataset: str, simulation: bool) -> Figure:  # fmt: skip
    """Figure 3 from every selected L1 muon, as a scouting analysis sees them: GMT and NN dimuon masses before
    (solid) and after (dashed) the fake-probability cut ``cut`` (text for the legend). ``masses``: ``GMT``, ``NN``,
    ``GMT cut``, ``NN cut``."""
    curves = []
    for name, values in masses.items():
        source, after = name.removesuffix(" cut"), name.endswith(" cut")
        label = f"{source}, {cut}" if after else f"{source}, all selected muons"
        curves.append((values, COLORS[source], label, "--" if after else "-"))
    return _mass_figure(curves, stem, mass_range=mass_range, bins=bins, dataset=dataset, simulation=simulation,
                        legend_size="x-small")  # fmt: skip


def resonance_overlay(masses: dict[str, np.ndarray], fits: list[ResonanceFit], stem, *, model: str, dataset: str,
                      simulation: bool, nn_label: str | None = None) -> Figure:  # fmt: skip
    """One panel per resonance: each source's masses (points) in its fit window and the fitted curve (one empty
    panel saying so when no resonance was fitted)."""
    resonances = list(dict.fromkeys(f.resonance for f in fits))
    names = {"GMT": "GMT", "NN": nn_label or f"NN ({model})", "offline": "offline", "FPGA": f"FPGA ({model})",
             "limit": "limit"}  # fmt: skip
    with cms_figure(ncols=max(len(resonances), 1), width=8.5) as (fig, axes):
        if not resonances:
            axes[0].text(0.5, 0.5, "no resonance fitted (plots.resonances)", ha="center", va="center")
        for ax, resonance in zip(axes, resonances, strict=True):
            mine = [f for f in fits if f.resonance == resonance and np.isfinite(f.peak)]
            pdg = pdg_mass(MASS_LINES[resonance])
            low = min([f.window_low for f in mine], default=0.5 * pdg)
            high = max([f.window_high for f in mine], default=1.5 * pdg)
            edges = np.linspace(low, high, 81)
            width = edges[1] - edges[0]
            for fit in mine:
                counts, _ = np.histogram(masses[fit.source], bins=edges)
                centres = 0.5 * (edges[1:] + edges[:-1])
                ax.errorbar(centres, counts, yerr=np.sqrt(counts), fmt="o", ms=3, color=COLORS[fit.source],
                            label=f"{names[fit.source]}: {fit.peak:.3f}$\\pm${fit.peak_err:.3f}, "
                                  f"$\\sigma$ {fit.width:.3f} GeV")  # fmt: skip
                x = np.linspace(fit.window_low, fit.window_high, 400)[1:-1]  # the density is one-sided at the edges
                ax.plot(x, fit.density(x) * width, color=COLORS[fit.source], lw=2)
            ax.axvline(pdg, color="dimgrey", ls=":", lw=1.5, label=f"PDG {pdg:.3f} GeV")
            ax.set_xlabel(r"$m_{\mu\mu}$ [GeV]")
            ax.set_ylabel(f"pairs / {width:.2g} GeV")
            ax.set_title(LABELS[resonance], loc="right", pad=28)
            ax.set_yscale("log")
            ax.set_ylim(bottom=max(ax.get_ylim()[0], 1.0), top=ax.get_ylim()[1] * 50)
            ax.legend(fontsize="x-small", loc="upper left")
            cms_label(ax, dataset, simulation)
        save(fig, stem)
    return fig


def turn_on_plot(table: pd.DataFrame, stem, *, model: str, dataset: str, simulation: bool) -> Figure:
    """Efficiency vs offline pT per threshold: GMT pT (open markers, dashed) and network pT (filled, solid)."""
    names = {"GMT": "GMT", "NN": f"NN ({model})"}
    thresholds = sorted(table["threshold"].unique())
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, len(thresholds)))
    with cms_figure() as (fig, (ax,)):
        for colour, threshold in zip(colours, thresholds, strict=True):
            for source, style in (("GMT", dict(ls="--", mfc="white")), ("NN", dict(ls="-"))):
                curve = table[(table["threshold"] == threshold) & (table["source"] == source)]
                if curve.empty:
                    continue
                centres = 0.5 * (curve["pt_low"] + curve["pt_high"])
                label = f"{names[source]}, $p_T \\geq$ {threshold:g} GeV: 50 % at {half_point(curve):.1f} GeV"
                ax.errorbar(centres, curve["efficiency"], yerr=[curve["err_low"], curve["err_high"]],
                            xerr=0.5 * (curve["pt_high"] - curve["pt_low"]), marker="o", ms=4, color=colour,
                            label=label, **style)  # fmt: skip
        ax.axhline(1.0, color="grey", lw=1)
        ax.set_xlabel(r"offline $p_T$ [GeV]")
        ax.set_ylabel("L1 efficiency")
        ax.set_ylim(0, 1.25)
        ax.set_xlim(table["pt_low"].min(), table["pt_high"].max())
        ax.legend(fontsize="x-small", loc="lower right")
        cms_label(ax, dataset, simulation)
        save(fig, stem)
    return fig


def search_plot(table: pd.DataFrame, handles: Sequence[str], stem, *, base: dict[str, str], dataset: str,
                simulation: bool, metrics: Sequence[str] = ("phi_rms", "eta_rms", "pt_rms")) -> Figure:  # fmt: skip
    """The search (``search.csv``) around its base: per handle that was varied (columns) and RMS metric (rows), the
    points that differ from ``base`` (handle → value, as in the table) in that handle only, mean ± std over folds at
    each value (in search order), the base's value hatched and the best value of the slice a star."""
    varied = [h for h in handles if table[h].nunique() > 1] or list(handles[:1])
    with matplotlib.style.context(mplhep.style.CMS):
        fig = Figure(figsize=(6.5 * len(varied), 5.0 * len(metrics)), layout="constrained")
        FigureCanvasAgg(fig)
        grid = np.asarray(fig.subplots(len(metrics), len(varied), squeeze=False))
        for col, handle in enumerate(varied):
            others = [h for h in handles if h != handle]
            rows = table[(table[others] == pd.Series({h: base[h] for h in others})).all(axis=1)]
            values = list(dict.fromkeys(rows[handle]))
            x = np.arange(len(values), dtype=float)
            rows = rows.set_index(handle).loc[values]
            for row, metric in enumerate(metrics):
                ax = grid[row, col]
                ax.errorbar(x, rows[metric], yerr=rows[f"{metric}_std"].fillna(0), fmt="o", ms=7, color="tab:blue",
                            capsize=3, label="mean ± std over folds")  # fmt: skip
                if base[handle] in values:
                    ax.axvspan(values.index(base[handle]) - 0.3, values.index(base[handle]) + 0.3, color="0.9",
                               zorder=0, label="base")  # fmt: skip
                best = int(np.argmin(rows[metric].to_numpy()))
                ax.plot(x[best], rows[metric].iloc[best], "*", ms=18, color="tab:red", label="best of the slice")
                ax.set_xticks(x, values, rotation=30, ha="right", fontsize="x-small")
                ax.set_xlim(-0.6, len(values) - 0.4)
                ax.set_xlabel(f"{handle.replace('_', ' ')} (others at the base)", fontsize="small")
                ax.set_ylabel(f"{metric.replace('_', ' ')}", fontsize="small")
                ax.tick_params(labelsize="x-small")
                if row == 0:
                    cms_label(ax, dataset, simulation)
                if row == 0 and col == 0:
                    ax.legend(fontsize="xx-small", loc="upper right")
        save(fig, stem)
    return fig
