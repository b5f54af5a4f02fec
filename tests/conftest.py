"""Shared fixtures: the real-layout L1Ntuple written with CERN ROOT as CMSSW's L1TNtuples writes it, toy skims.

A copy of ``shared/fixtures`` (file, truth tables, README) lives in ``tests/data/cmssw`` so the suite never
depends on anything outside the repository and never skips these tests. The toy skims' L1 − offline differences
are smooth functions of the hardware inputs, so a working training loop learns them in a few epochs.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l1refit.ml.spec import ModelSpec
from l1refit.scales import delta_phi

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "data" / "cmssw"
FIXTURE = FIXTURES / "l1ntuple_cmssw_layout.root"


@pytest.fixture(scope="session")
def cmssw_ntuple() -> Path:
    return FIXTURE


@pytest.fixture(scope="session")
def cmssw_fixtures() -> Path:
    """The directory of the CMSSW-layout fixture: the ROOT file, truth.csv, offline_truth.csv."""
    return FIXTURES


SPEC_A = ModelSpec("logcosh", "adam", None, "relu", "linear")  # model A of the paper's Table 1


def _toy_skim(n: int, seed: int = 0, noise: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hw_phi = rng.integers(0, 576, n)
    hw_eta = rng.integers(-80, 82, n)
    hw_pt = rng.integers(7, 91, n)
    charge = rng.choice([-1, 1], n)
    l1_pt = (hw_pt - 1) * 0.5
    l1_eta = hw_eta * 0.010875
    l1_phi = delta_phi(hw_phi * 0.010908, 0.0)
    dphi = 0.3 * charge / l1_pt + 0.02 * np.sin(hw_phi * 2 * np.pi / 576) + noise * rng.normal(size=n)
    deta = 0.01 * l1_eta**2 + noise * rng.normal(size=n) * 0.01
    dpt = 0.1 * l1_pt + noise * rng.normal(size=n)
    return pd.DataFrame({
        "hwPhiAtVtx": hw_phi, "hwEtaAtVtx": hw_eta, "hwPt": hw_pt, "charge": charge,
        "l1_pt": l1_pt, "l1_eta": l1_eta, "l1_phi": l1_phi,
        "reco_pt": l1_pt - dpt, "reco_eta": l1_eta - deta, "reco_phi": delta_phi(l1_phi, dphi),
    })  # fmt: skip


def _fit(df: pd.DataFrame, spec: ModelSpec = SPEC_A, **kwargs):
    from l1refit.ml.training import train  # imported here: torch is slow to load and most tests do not need it

    args = {"epochs": 4, "batch_size": 256, "patience": 3, "validation_fraction": 0.2, "seed": 7,
            "progress": lambda line: None} | kwargs  # fmt: skip
    return train(df, spec, **args)


@pytest.fixture(scope="session")
def spec_a() -> ModelSpec:
    """Model A of Table 1 (log-cosh, Adam, no regularisation, ReLU, linear output), 3 × 32 hidden units."""
    return SPEC_A


@pytest.fixture(scope="session")
def toy_skim():
    """``toy_skim(n, seed=0, noise=0.0)``: a skim-shaped DataFrame (hardware inputs, L1 and offline values)."""
    return _toy_skim


@pytest.fixture(scope="session")
def fit_toy():
    """``fit_toy(df, spec=model A, **train_kwargs)``: (TrainedModel, history), 4 quiet epochs by default."""
    return _fit


L1SCOUTING = REPO / "tests" / "data" / "l1scouting"  # CMSSW-written L1 scouting EDM files (README there)


@pytest.fixture(scope="session")
def l1scouting_edm() -> tuple[Path, Path]:
    """(split-99 file, split-0 file) of the CMSSW L1 scouting EDM fixtures."""
    stem = "testL1Scouting_v3_v3_v3_v3_v3_v3_14_1_0_pre5_split_"
    return L1SCOUTING / f"{stem}99.root", L1SCOUTING / f"{stem}0.root"


def _l1scouting_rows(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-muon rows over the hardware range, sorted by (orbit, bx), several muons in some BXs (write_nano input)."""
    rng = np.random.default_rng(seed)
    rows = {"run": np.full(n, 386000), "lumi": np.full(n, 12), "orbit": rng.integers(1, n // 3 + 2, n),
            "bx": rng.integers(1, 3565, n) // 400 * 400 + 1}  # fmt: skip
    order = np.lexsort((rows["bx"], rows["orbit"]))
    rows = {k: v[order] for k, v in rows.items()}
    return rows | {
        "hwPt": rng.integers(1, 512, n), "hwEta": rng.integers(-230, 231, n), "hwPhi": rng.integers(0, 576, n),
        "hwEtaAtVtx": rng.integers(-230, 231, n), "hwPhiAtVtx": rng.integers(0, 576, n),
        "hwPtUnconstrained": rng.integers(0, 256, n), "hwCharge": rng.choice([-1, 1], n),
        "hwQual": rng.integers(1, 16, n), "tfMuonIndex": rng.integers(0, 108, n), "hwDXY": rng.integers(0, 4, n),
    }  # fmt: skip


@pytest.fixture(scope="session")
def l1scouting_rows():
    """``l1scouting_rows(n, seed)``: synthetic per-muon rows for ``l1refit.formats.l1scouting_write.write_nano``."""
    return _l1scouting_rows
