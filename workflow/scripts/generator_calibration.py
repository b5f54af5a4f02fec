"""Snakemake adapter: synthetic GMT metrics beside the paper's, and the Bayes limit -> generator_calibration.csv."""

import sys

from l1refit.metrics import Windows
from l1refit.simulate.calibration import write_calibration_table
from l1refit.simulate.params import resolve

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

cal = snakemake.params.calibration  # noqa: F821
write_calibration_table(
    snakemake.output[0],  # noqa: F821
    resolve(snakemake.params.generator),  # noqa: F821
    n=cal["muons"],
    seed=cal["seed"],
    n_bayes=cal["bayes_muons"],
    bayes_seed=cal["bayes_seed"],
    windows=Windows.from_config(snakemake.params.metrics),  # noqa: F821
)
