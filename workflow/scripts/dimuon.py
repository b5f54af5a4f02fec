"""Snakemake adapter: final-model predictions on the mass dataset -> Figure 3, resonances.csv, the fit overlay."""

import sys

from l1refit.analysis import run_dimuon

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

plots = snakemake.params.plots  # noqa: F821
run_dimuon(
    snakemake.input[0],  # noqa: F821
    model=snakemake.params.model,  # noqa: F821
    resonances=plots["resonances"],
    mass_range=plots["mass_range"],
    bins=plots["mass_bins"],
    dataset=snakemake.params.dataset,  # noqa: F821
    simulation=snakemake.params.simulation,  # noqa: F821
    fig3_stem=snakemake.output.fig3_png.removesuffix(".png"),  # noqa: F821
    overlay_stem=snakemake.output.overlay_png.removesuffix(".png"),  # noqa: F821
    table_path=snakemake.output.table,  # noqa: F821
)
