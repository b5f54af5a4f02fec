"""Turn-on curves: counts, efficiencies, Clopper-Pearson intervals, 50 % point."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from l1refit.analysis.efficiency import TURN_ON_COLUMNS, half_point, turn_on, turn_on_table


def test_counts_efficiency_and_clopper_pearson():
    offline = np.array([1.0, 1.5, 6.0, 6.5, 7.0, 7.5, 12.0])
    l1 = np.array([6.0, 2.0, 4.0, 5.0, 9.0, 5.5, 30.0])
    curve = turn_on(offline, l1, 5.0, [0.0, 5.0, 10.0, 15.0, 20.0])
    np.testing.assert_array_equal(curve["total"], [2, 4, 1, 0])
    np.testing.assert_array_equal(curve["passed"], [1, 3, 1, 0])
    np.testing.assert_allclose(curve["efficiency"][:3], [0.5, 0.75, 1.0])
    assert np.isnan(curve["efficiency"][3])
    # Clopper-Pearson 68.27 %: lower bound of 3 of 4
    lower = beta.ppf((1 - 0.682689) / 2, 3, 2)
    assert curve["err_low"][1] == pytest.approx(0.75 - lower, rel=1e-4)
    assert curve["err_high"][2] == pytest.approx(0.0, abs=1e-12)


def test_table_and_half_point():
    rng = np.random.default_rng(1)
    reco = rng.uniform(0, 40, 200_000)
    df = pd.DataFrame({"reco_pt": reco, "sharp": reco, "smeared": reco * rng.normal(1.0, 0.2, reco.size)})
    table = turn_on_table(df, [10.0, 20.0], np.linspace(0, 40, 81), {"sharp": "sharp", "smeared": "smeared"})
    assert list(table.columns) == list(TURN_ON_COLUMNS) and len(table) == 4 * 80
    sharp = table[(table["source"] == "sharp") & (table["threshold"] == 10.0)]
    assert set(sharp["efficiency"]) == {0.0, 1.0}
    assert half_point(sharp) == pytest.approx(10.0, abs=0.5)
    smeared = table[(table["source"] == "smeared") & (table["threshold"] == 20.0)]
    assert half_point(smeared) == pytest.approx(20.0, abs=1.0)
    assert smeared["efficiency"].iloc[30] < 0.5 < smeared["efficiency"].iloc[50]  # 15 GeV vs 25 GeV
