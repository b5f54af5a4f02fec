"""Shared fixtures: the real-layout L1Ntuple written with CERN ROOT, shipped beside the project in shared/."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def cmssw_ntuple() -> Path:
    path = FIXTURES / "l1ntuple_cmssw_layout.root"
    if not path.is_file():
        pytest.skip(f"the CMSSW-layout fixture is missing: {path} (it ships in shared/fixtures beside the repo)")
    return path
