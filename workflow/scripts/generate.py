"""Snakemake adapter: one synthetic L1Ntuple-layout file -> results/ntuples/{dataset}/{part}.root."""

import sys

from l1refit.simulate.events import generate_file
from l1refit.simulate.params import resolve

# progress (stdout) and errors (stderr) both go to the rule's log, kept open for the whole script
sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821, SIM115

spec = snakemake.params.spec  # noqa: F821
generate_file(
    snakemake.output[0],  # noqa: F821
    spec["population"],
    spec["events"],
    seed=spec["seed"],
    part=spec["part"],
    gen=resolve(snakemake.params.generator),  # noqa: F821
)
