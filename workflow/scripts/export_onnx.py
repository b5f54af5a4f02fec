"""Snakemake adapter: final model -> results/onnx/{model}.onnx, checked against PyTorch on skim rows."""

import sys

from l1refit.export import run_export

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

run_export(
    snakemake.input.model,  # noqa: F821
    snakemake.output[0],  # noqa: F821
    model_id=snakemake.wildcards.model,  # noqa: F821
    skim_path=snakemake.input.skim,  # noqa: F821
)
