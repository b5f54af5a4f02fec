"""Fake barrel L1 muons (docs/physics.md §4.1): a separate random stream leaves everything else bit-identical, and
ghosts, punch-through and out-of-time muons come at their configured rates with their own signatures."""

from collections import Counter

import awkward as ak
import numpy as np
import pytest

from l1refit.simulate import events, fakes

N_EVENTS = 4000
FIELDS = ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual", "bx")
OFF = {"ghost_prob": 0.0, "out_of_time_rate": 0.0, "punch_through_rate": 0.0}


def with_fakes(gen, **values):
    return {**gen, "fakes": {**gen["fakes"], **values}}


def block(gen, luts, seed=4):
    return events.zerobias_block(events.block_rng(seed, 0, 0), N_EVENTS, gen, luts)


def rows(ev) -> Counter:
    """The L1 candidates as a multiset of (event, *FIELDS) (tfMuonIndex left out: a new candidate may re-rank)."""
    l1 = ev.L1Mu
    event = np.repeat(np.arange(len(ev)), ak.num(l1).to_numpy())
    cols = [event] + [ak.flatten(l1[k]).to_numpy().astype(np.int64) for k in FIELDS]
    return Counter(zip(*cols, strict=True))


def added(ev, base) -> dict[str, np.ndarray]:
    """The candidates of ``ev`` that ``base`` (the same block without the new fakes) does not have."""
    extra = list((rows(ev) - rows(base)).elements())
    assert sum(rows(base).values()) + len(extra) == int(ak.sum(ak.num(ev.L1Mu)))  # base's candidates all survive
    cols = np.array(extra, np.int64).reshape(-1, 1 + len(FIELDS))
    return dict(zip(("event", *FIELDS), cols.T, strict=True))


def real_barrel(ev) -> dict[str, np.ndarray]:
    """Real in-time barrel candidates (BMTF tfMuonIndex, BX 0, quality >= 13: the noise fakes have 12)."""
    l1 = ev.L1Mu
    keep = (l1.bx == 0) & (l1.tfMuonIndex >= 36) & (l1.tfMuonIndex <= 71) & (l1.hwQual >= 13)
    event = np.repeat(np.arange(len(ev)), ak.num(l1[keep]).to_numpy())
    return {"event": event} | {k: ak.flatten(l1[keep][k]).to_numpy().astype(np.int64) for k in FIELDS}


def within(n, expected, sigma2):
    """|n − expected| below 5 σ."""
    return abs(n - expected) < 5 * np.sqrt(sigma2) + 1


def test_new_fakes_off_is_todays_block_and_on_leaves_the_rest_identical(gen, luts, monkeypatch):
    off = block(with_fakes(gen, **OFF), luts)
    on = block(gen, luts)
    monkeypatch.setattr(fakes, "fake_candidates", lambda *args: [])  # the block without the new sources at all
    today = block(gen, luts)
    assert ak.to_list(off) == ak.to_list(today)
    assert str(off.type) == str(today.type)  # no column widened by the (empty) new parts
    # the defaults add candidates, and change nothing else: same offline muons, same event fields, same candidates
    assert ak.to_list(on.Muon) == ak.to_list(off.Muon)
    assert all(ak.to_list(on[k]) == ak.to_list(off[k]) for k in ("run", "lumi", "event", "bx", "orbit"))
    assert len(added(on, off)["event"]) > 0
    # the fakes' stream is the block stream's own (seed, part, block, 1), used by generate_file
    a, b = fakes.stream(events.block_rng(4, 2, 3)).random(5), events.fake_block_rng(4, 2, 3).random(5)
    assert np.array_equal(a, b) and not np.array_equal(a, events.block_rng(4, 2, 3).random(5))


def test_ghosts_rate_phi_window_and_lower_quality(gen, luts):
    cfg = with_fakes(gen, **{**OFF, "ghost_prob": 0.2})
    base, ev = block(with_fakes(gen, **OFF), luts), block(cfg, luts)
    real, ghost = real_barrel(base), added(ev, base)
    n_real, n = real["event"].size, ghost["event"].size
    assert within(n, 0.2 * n_real, n_real * 0.2 * 0.8)
    lo, hi = gen["fakes"]["ghost_dphi_min"], gen["fakes"]["ghost_dphi_max"]
    for i in range(n):
        mine = real["event"] == ghost["event"][i]
        dphi = np.abs(np.mod(ghost["hwPhi"][i] - real["hwPhi"][mine] + 288, 576) - 288)
        parent = (dphi >= lo) & (dphi <= hi) & (ghost["hwQual"][i] <= real["hwQual"][mine] - 1)
        assert parent.any(), f"ghost {i} has no real candidate within its phi window and above its quality"
    assert set(np.unique(ghost["hwQual"])) <= {12, 13, 14} and np.all(ghost["bx"] == 0)
    assert np.all(np.abs(ghost["hwEta"]) <= fakes.HW_ETA_BARREL)


def test_punch_through_quality_12_or_13(gen, luts):
    rate, q12 = 0.5, gen["fakes"]["punch_through_q12_fraction"]
    cfg = with_fakes(gen, **{**OFF, "punch_through_rate": rate})
    base, ev = block(with_fakes(gen, **OFF), luts), block(cfg, luts)
    punch = added(ev, base)
    n = punch["event"].size
    assert within(n, rate * N_EVENTS, rate * N_EVENTS)
    assert set(np.unique(punch["hwQual"])) == {12, 13}
    assert within(np.sum(punch["hwQual"] == 12), q12 * n, n * q12 * (1 - q12))
    assert np.all(np.abs(punch["hwEta"]) <= fakes.HW_ETA_BARREL) and np.all(punch["bx"] == 0)
    assert np.all(punch["hwPt"] >= gen["bmtf"]["hw_pt_min"]) and np.median(punch["hwPt"]) < 12  # near threshold


def test_out_of_time_muons_add_unmatched_real_looking_candidates(gen, luts):
    rate = 0.2
    cfg = with_fakes(gen, **{**OFF, "out_of_time_rate": rate})
    base, ev = block(with_fakes(gen, **OFF), luts), block(cfg, luts)

    def unmatched(e):  # BX-0 L1 candidates minus offline muons
        return int(ak.sum(ak.num(e.L1Mu[e.L1Mu.bx == 0]))) - int(ak.sum(ak.num(e.Muon)))

    n_off = int(ak.sum(ak.num(base.Muon)))
    p_l1 = real_barrel(base)["event"].size / n_off  # share of ZeroBias muons with a barrel L1 candidate
    growth = unmatched(ev) - unmatched(base)
    assert int(ak.sum(ak.num(ev.Muon))) == n_off  # their offline muons are not written
    assert within(growth, rate * N_EVENTS * p_l1, rate * N_EVENTS * p_l1)
    late = added(ev, base)
    assert late["event"].size == growth and set(np.unique(late["hwQual"])) <= {13, 14, 15}  # like real muons


def test_ghost_window_must_be_ordered(gen, luts):
    cfg = with_fakes(gen, ghost_dphi_min=10, ghost_dphi_max=3)
    with pytest.raises(ValueError, match="ghost_dphi_min"):
        block(cfg, luts)
