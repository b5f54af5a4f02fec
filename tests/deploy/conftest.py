"""Fixtures of the deployment tests: a tiny trained model (on tests/conftest.py's toy skim), its ONNX export and int8.

Timings are only checked to be positive and ordered; nothing asserts on speed (±30 % on shared machines).
"""

import pandas as pd
import pytest

from l1refit.config.loading import defaults
from l1refit.deploy.fakeid import export_fakeid
from l1refit.deploy.onnx_export import export_onnx
from l1refit.deploy.quantize import quantize_int8
from l1refit.ml.fakeid import train_classifier
from l1refit.simulate.events import generate_file
from l1refit.simulate.ugmt import build_luts
from l1refit.skim.files import skim_file
from l1refit.skim.selection import Selection


@pytest.fixture(scope="session")
def exported(tmp_path_factory, toy_skim, fit_toy):
    """(tmp dir, exported graph, skim, model) of an absolute-pT model trained one epoch on a toy skim."""
    tmp = tmp_path_factory.mktemp("deploy")
    skim = toy_skim(3000, seed=5, noise=0.01)
    model, _ = fit_toy(skim, epochs=1)
    path = tmp / "toy.onnx"
    export_onnx(model, path, "toy")
    return tmp, path, skim, model


@pytest.fixture(scope="session")
def int8(exported):
    """(path, notes) of the exported toy graph quantised to int8, calibrated on its skim's last 1000 rows."""
    tmp, path, skim, _ = exported
    notes = quantize_int8(path, tmp / "toy_int8.onnx", skim.iloc[-1000:], batch_size=250)
    return tmp / "toy_int8.onnx", notes


@pytest.fixture(scope="session")
def deployed(tmp_path_factory):
    """(tmp dir, ntuple, skim, candidates, classifier, exported graph) of a fake classifier trained two epochs on
    the candidate table of a small synthetic L1Ntuple."""
    tmp = tmp_path_factory.mktemp("fakeid")
    gen = defaults("generator")
    gen["ugmt"] = {**gen["ugmt"], "lut_samples": 20000}
    ntuple = tmp / "zb.root"
    generate_file(ntuple, "zerobias", 8000, seed=3, part=0, gen=gen, luts=build_luts(gen))
    skim_file(
        ntuple,
        "l1ntuple",
        None,
        tmp / "skim.parquet",
        tmp / "cutflow.csv",
        out_candidates=tmp / "candidates.parquet",
        step_size=3000,
    )  # fmt: skip  (chunks split the events)
    candidates = pd.read_parquet(tmp / "candidates.parquet")
    classifier, _ = train_classifier(candidates, epochs=2, batch_size=256, seed=1)
    onnx_path = tmp / "fakeid.onnx"
    export_fakeid(classifier, onnx_path, Selection.from_config(None))
    return tmp, ntuple, tmp / "skim.parquet", candidates, classifier, onnx_path
