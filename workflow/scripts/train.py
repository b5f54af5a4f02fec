"""Snakemake adapter: train one model on the training folds (or on all, fold = -1) -> model.pt, history, plot."""

import sys

from l1refit.stages import run_training

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

run_training(
    snakemake.input[0],  # noqa: F821
    snakemake.params.spec,  # noqa: F821
    snakemake.params.training,  # noqa: F821
    snakemake.params.fold,  # noqa: F821
    model_path=snakemake.output.model,  # noqa: F821
    history_path=snakemake.output.history,  # noqa: F821
    plot_path=snakemake.output.plot,  # noqa: F821
)
