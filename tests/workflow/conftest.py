"""Fixtures of the workflow tests: running the real Snakemake DAG on tiny overlay configs."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

MODEL_A = {"loss": "logcosh", "optimizer": "adam", "regularization": None, "hidden_activation": "relu",
           "output_activation": "linear"}  # fmt: skip
# Two small synthetic datasets, two models, two folds, two epochs; every stage of `all` runs in about a minute.
TINY = {
    "datasets": {"zerobias": {"source": "synthetic", "population": "zerobias", "files": 1, "events_per_file": 6000,
                              "seed": 1},
                 "muonia": {"source": "synthetic", "population": "muonia", "files": 1, "events_per_file": 4000,
                            "seed": 2}},
    "training": {"folds": 2, "epochs": 2, "batch_size": 256, "patience": 2, "baselines": ["lut"]},
    "models": {"A": MODEL_A, "B": {**MODEL_A, "optimizer": "adadelta", "regularization": {"l2": 1.0e-7}}},
    "analysis_model": "B",
    # J/ψ and Υ only (null drops the default φ): each fit is a second of multi-start minimisation
    "plots": {"mass_dataset": "muonia", "turn_on_thresholds": [5.0, 10.0], "resonances": {"phi": None}},
    "benchmark": {"batch_sizes": [1, 256], "threads": [1], "rows": 4096, "repeats": 1, "precision_rows": 1000,
                  "sgemm_size": 256},
    "calibration": {"muons": 20000, "seed": 1, "bayes_muons": 20000, "bayes_seed": 2},
    "reweight": {"epochs": 2, "patience": 2},
    # off in the tiny runs (compiling takes seconds); test_training_workflow turns it on once
    "fpga": {"enabled": False, "check_rows": 300,
             "precisions": ["ap_fixed<12,6,AP_RND,AP_SAT>;dense4.result=ap_fixed<14,8,AP_RND,AP_SAT>"],
             "qat": {"epochs": 1}},
    "fakeid": {"fpga": {"precisions": ["ap_fixed<16,6,AP_RND,AP_SAT>"]}},  # its firmware: one design
}  # fmt: skip
# One dataset, one model, two folds, one epoch, no mass plots: every stage but Figure 3 and fake identification runs
# (the fake classifier's jobs run in the TINY runs).
SMALL = {
    **TINY,
    "fakeid": {"enabled": False},
    "datasets": {"zerobias": TINY["datasets"]["zerobias"]},
    "training": {**TINY["training"], "epochs": 1},
    "models": {"A": MODEL_A},
    "analysis_model": "A",
    "plots": {**TINY["plots"], "mass_dataset": None},
}


def run_snakemake(*args, cwd=REPO, check=True, timeout=600):
    """``snakemake ARGS`` with this repository's Snakefile; an AssertionError with its output if it fails."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def dump_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def snakemake():
    """The function that runs the real workflow (see run_snakemake)."""
    return run_snakemake


@pytest.fixture(scope="session")
def write_config():
    """``write_config(path, dict)`` → path of a YAML overlay config."""
    return dump_config


@pytest.fixture(scope="module")
def tiny() -> dict:
    """A copy of the tiny two-dataset, two-model overlay config (per module: build variants, do not mutate it)."""
    return copy.deepcopy(TINY)


@pytest.fixture(scope="module")
def small() -> dict:
    """A copy of the one-dataset, one-model, one-epoch overlay config (per module: do not mutate it)."""
    return copy.deepcopy(SMALL)


@pytest.fixture(scope="session")
def job_counts():
    """``job_counts(proc)`` → {rule: count} from the 'Job stats' table of a dry run."""

    def counts(proc) -> dict[str, int]:
        text = proc.stdout + proc.stderr
        block = text.split("Job stats:")[1].split("total")[0]
        return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}

    return counts


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny config run through `all` once per module: (working directory, config path)."""
    workdir = tmp_path_factory.mktemp("train")
    config = dump_config(workdir / "config.yaml", TINY)
    run_snakemake("--cores", "2", f"--configfile={config}", "--directory", str(workdir), "all")
    return workdir, config
