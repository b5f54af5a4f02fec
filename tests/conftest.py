"""Shared fixtures: the real-layout L1Ntuple written with CERN ROOT as CMSSW's L1TNtuples writes it.

A copy of ``shared/fixtures`` (file, truth tables, README) lives in ``tests/data/cmssw`` so the suite never
depends on anything outside the repository and never skips these tests.
"""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "data" / "cmssw"
FIXTURE = FIXTURES / "l1ntuple_cmssw_layout.root"


@pytest.fixture(scope="session")
def cmssw_ntuple() -> Path:
    return FIXTURE
