"""Every analysis figure renders headless to a valid PNG and PDF with axis labels, a legend and the CMS label."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from l1refit.analysis.efficiency import turn_on_table
from l1refit.analysis.fit import fit_table
from l1refit.analysis.metrics import Windows
from l1refit.analysis.plots import fig2_residuals, fig3_mass, resonance_overlay, turn_on_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _predictions(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    reco_pt = rng.uniform(3, 40, n)
    reco_eta, reco_phi = rng.uniform(-0.8, 0.8, n), rng.uniform(-np.pi, np.pi, n)
    return pd.DataFrame({
        "part": 0, "entry": np.arange(n) // 2, "charge": np.tile([1, -1], n // 2),
        "reco_pt": reco_pt, "reco_eta": reco_eta, "reco_phi": reco_phi,
        "l1_pt": reco_pt * rng.normal(1.1, 0.25, n), "l1_eta": reco_eta + rng.normal(0, 0.03, n),
        "l1_phi": reco_phi + rng.normal(0, 0.15, n),
        "pred_pt": reco_pt * rng.normal(1.0, 0.15, n), "pred_eta": reco_eta + rng.normal(0, 0.03, n),
        "pred_phi": reco_phi + rng.normal(0, 0.1, n),
    })  # fmt: skip


def _check_files(stem, min_width=800):
    png = stem.with_suffix(".png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 20_000
    with Image.open(stem.with_suffix(".png")) as image:
        assert image.width >= min_width and image.height >= 500
    assert stem.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert not list(stem.parent.glob(".*tmp*"))  # no temporary file left behind


def _texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def _check_axes(fig, x_units=True):
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
        if x_units:
            assert "[" in ax.get_xlabel()
        assert ax.get_legend() is not None and ax.get_legend().get_texts()


@pytest.mark.parametrize("simulation", [True, False])
def test_fig2(tmp_path, simulation):
    windows = Windows.from_config(None)
    fig, rms = fig2_residuals(_predictions(), tmp_path / "fig2", model="B", windows=windows, min_l1_pt=3.0,
                              dataset="zerobias", simulation=simulation)  # fmt: skip
    _check_files(tmp_path / "fig2", min_width=2000)
    assert len(fig.axes) == 3 and "[rad]" in fig.axes[0].get_xlabel()
    for ax in fig.axes:
        assert ax.get_ylabel() and ax.get_legend() is not None
    texts = _texts(fig)
    assert "CMS" in texts and "zerobias" in texts and ("Simulation" in texts) == simulation
    assert rms["NN"]["pt"] < rms["GMT"]["pt"]
    with pytest.raises(ValueError, match="no muons with L1 pT >= 500"):
        fig2_residuals(_predictions(), tmp_path / "x", model="B", windows=Windows.from_config(None), min_l1_pt=500.0,
                       dataset="zerobias", simulation=True)  # fmt: skip


def _masses(rng, n=30000):
    jpsi = {"GMT": rng.normal(3.4, 0.4, n), "NN": rng.normal(3.2, 0.3, n), "offline": rng.normal(3.097, 0.03, n)}
    background = rng.uniform(0.3, 20, n)
    return {k: np.concatenate([v, background]) for k, v in jpsi.items()}


def test_fig3_and_resonance_overlay(tmp_path):
    masses = _masses(np.random.default_rng(2))
    fig = fig3_mass(masses, tmp_path / "fig3", model="B", mass_range=(0.0, 20.0), bins=200, dataset="muonia",
                    simulation=True)  # fmt: skip
    _check_files(tmp_path / "fig3")
    _check_axes(fig)
    texts = _texts(fig)
    assert "CMS" in texts and "Simulation" in texts and "J/$\\psi$" in texts
    lines = [line.get_xdata()[0] for line in fig.axes[0].get_lines() if line.get_linestyle() == ":"]
    np.testing.assert_allclose(sorted(lines), [1.019461, 3.0969, 9.4603], atol=1e-3)

    table, fits = fit_table(masses, {"jpsi": None})
    assert table["valid"].all()
    fig = resonance_overlay(masses, fits, tmp_path / "res", model="B", dataset="muonia", simulation=True)
    _check_files(tmp_path / "res")
    _check_axes(fig)


def test_turn_on_plot(tmp_path):
    table = turn_on_table(_predictions(), [5.0, 10.0, 20.0], np.linspace(0, 40, 41), {"GMT": "l1_pt", "NN": "pred_pt"})
    fig = turn_on_plot(table, tmp_path / "turn_on", model="B", dataset="zerobias", simulation=False)
    _check_files(tmp_path / "turn_on")
    _check_axes(fig)
    assert len(fig.axes[0].get_legend().get_texts()) == 6
    assert "CMS" in _texts(fig) and "Simulation" not in _texts(fig)


def test_dimuon_stage_without_offline_muons(tmp_path):
    """Scouting data have no offline muons: Figure 3 and the fits use GMT and NN values only."""
    from l1refit.stages.plots import dimuon

    df = _predictions().drop(columns=["reco_pt", "reco_eta", "reco_phi"])
    df.to_parquet(tmp_path / "pred.parquet")
    plots = {"resonances": {"phi": None, "jpsi": [2.0, 5.5]}, "mass_range": (0, 20), "mass_bins": 100}  # φ: not fitted
    table = dimuon(predictions=str(tmp_path / "pred.parquet"), model="B", plots=plots, dataset="scouting",
                   simulation=False, fig3_png=str(tmp_path / "fig3.png"), fig3_pdf=str(tmp_path / "fig3.pdf"),
                   table=str(tmp_path / "res.csv"), overlay_png=str(tmp_path / "res.png"),
                   overlay_pdf=str(tmp_path / "res.pdf"))  # fmt: skip
    assert table["source"].tolist() == ["GMT", "NN"] and set(table["resonance"]) == {"jpsi"}
    assert pd.read_csv(tmp_path / "res.csv")["source"].tolist() == ["GMT", "NN"]
    _check_files(tmp_path / "fig3")
