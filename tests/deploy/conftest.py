"""Fixtures of the deployment tests: a tiny trained model (on tests/conftest.py's toy skim), its ONNX export and int8.

Timings are only checked to be positive and ordered; nothing asserts on speed (±30 % on shared machines).
"""

import pytest

from l1refit.deploy.onnx_export import export_onnx
from l1refit.deploy.quantize import quantize_int8


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
