"""Fixtures of the synthetic-detector tests: the default generator parameters, selection and uGMT LUTs."""

import pytest

from l1refit.config.loading import defaults
from l1refit.simulate import ugmt


@pytest.fixture(scope="session")
def gen() -> dict:
    """The calibrated generator parameters of the default config."""
    return defaults("generator")


@pytest.fixture(scope="session")
def selection() -> dict:
    """The default config's ``selection:`` (the skim's cuts)."""
    return defaults("selection")


@pytest.fixture(scope="session")
def luts(gen):
    return ugmt.build_luts(gen)
