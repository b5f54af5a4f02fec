"""Fake barrel L1 muons: L1 candidates in BX 0 with no offline muon of their own (docs/physics.md §4.1).

Three sources besides the uniform noise of ``generator.extras.unmatched_rate`` (made in :mod:`.events`):

* ghosts: a duplicate of a real barrel candidate built by a neighbouring BMTF wedge that the uGMT cancel-out unit
  did not remove (``generator.fakes.ghost_*``);
* out-of-time muons: ZeroBias-like muons of another bunch crossing whose L1 candidate is assigned BX 0; their
  offline muon is not in the event (``out_of_time_rate``);
* punch-through: hadron showers leaking into the first stations, two-station candidates of quality 12–13 near the
  pT threshold (``punch_through_*``).

Every draw comes from its own random stream (:func:`stream`), never from the block's: the real muons, their BX ±1
copies and the noise candidates are the same whatever these parameters are.
"""

from __future__ import annotations

import numpy as np

from l1refit import scales
from l1refit.errors import ConfigError
from l1refit.simulate.chain import simulate_muons, zerobias_truth
from l1refit.simulate.detector import BARREL_ETA, power_law
from l1refit.simulate.ugmt import Luts, extrapolate

HW_ETA_BARREL = int(BARREL_ETA / scales.ETA_LSB)  # 76: the barrel's |hwEta| (the noise candidates' range too)
STREAM_KEY = 1  # appended to the block stream's entropy: (seed, part, block) -> (seed, part, block, 1)

Candidates = dict[str, np.ndarray]


def stream(rng: np.random.Generator) -> np.random.Generator:
    """The fakes' random stream belonging to the block stream ``rng``, derived from its seed sequence (which is not
    advanced or spawned from): for ``events.block_rng(seed, part, block)`` it is ``SeedSequence([seed, part, block,
    1])``, a stream no block uses."""
    seq = rng.bit_generator.seed_seq
    entropy = np.atleast_1d(np.asarray(seq.entropy, dtype=object)).tolist()
    return np.random.default_rng(np.random.SeedSequence([*entropy, STREAM_KEY], spawn_key=seq.spawn_key))


def _candidates(event, hw_pt, hw_eta, hw_phi, charge, quality, luts: Luts) -> Candidates:
    """A barrel, BX-0 candidate dict in the layout of ``events._l1_candidates`` (vertex values from the uGMT LUTs)."""
    hw_pt, hw_eta, hw_phi = (np.asarray(a).astype(np.int16) for a in (hw_pt, hw_eta, hw_phi))
    charge = np.asarray(charge).astype(np.int8)
    eta_vtx, phi_vtx = extrapolate(hw_pt, hw_eta, hw_phi, charge, luts)
    n = hw_pt.size
    return {
        "event": np.asarray(event, np.int64), "hwPt": hw_pt, "hwEta": hw_eta, "hwPhi": hw_phi,
        "hwEtaAtVtx": eta_vtx, "hwPhiAtVtx": phi_vtx, "charge": charge,
        "hwQual": np.asarray(quality).astype(np.int16), "barrel": np.ones(n, bool), "bx": np.zeros(n, np.int16),
    }  # fmt: skip


def ghosts(rng, real: Candidates, gen: dict, luts: Luts) -> Candidates:
    """Duplicates of real barrel candidates from a neighbouring wedge: φ offset by ±U{dφ_min..dφ_max} hwPhi, η
    smeared, pT × lognormal, quality one or two below the real one (at least 12), charge flipped 10 % of the time."""
    cfg, bmtf = gen["fakes"], gen["bmtf"]
    lo, hi = cfg["ghost_dphi_min"], cfg["ghost_dphi_max"]
    if lo > hi:
        raise ConfigError(f"generator.fakes.ghost_dphi_min = {lo} > ghost_dphi_max = {hi}: need min <= max")
    source = np.flatnonzero(real["barrel"] & (real["bx"] == 0))
    source = source[rng.random(source.size) < cfg["ghost_prob"]]
    n = source.size
    offset = rng.integers(lo, hi + 1, n) * rng.choice(np.array([-1, 1]), n)
    hw_phi = np.mod(real["hwPhi"][source].astype(np.int64) + offset, scales.N_PHI)
    d_eta = np.rint(cfg["ghost_deta_sigma"] * rng.standard_normal(n)).astype(np.int64)
    hw_eta = np.clip(real["hwEta"][source] + d_eta, -HW_ETA_BARREL, HW_ETA_BARREL)
    factor = rng.lognormal(0.0, cfg["ghost_pt_sigma"], n)
    hw_pt = np.clip(np.rint(real["hwPt"][source] * factor), bmtf["hw_pt_min"], bmtf["hw_pt_max"])
    quality = np.maximum(real["hwQual"][source] - 1 - (rng.random(n) < 0.5), 12)
    charge = np.where(rng.random(n) < 0.1, -real["charge"][source], real["charge"][source])
    return _candidates(real["event"][source], hw_pt, hw_eta, hw_phi, charge, quality, luts)


def out_of_time(rng, n_events: int, gen: dict, luts: Luts) -> Candidates:
    """Poisson(``out_of_time_rate``) ZeroBias-like muons per event from another crossing, run through the whole chain:
    the barrel L1 candidates are kept (as BX 0), the offline muons dropped."""
    counts = rng.poisson(gen["fakes"]["out_of_time_rate"], n_events)
    event = np.repeat(np.arange(n_events), counts)
    mu = simulate_muons(rng, zerobias_truth(rng, event.size, gen), gen, luts)
    keep = mu["has_l1"] & mu["barrel"]
    return {
        "event": event[keep], "hwPt": mu["l1_hwPt"][keep], "hwEta": mu["l1_hwEta"][keep],
        "hwPhi": mu["l1_hwPhi"][keep], "hwEtaAtVtx": mu["l1_hwEtaAtVtx"][keep],
        "hwPhiAtVtx": mu["l1_hwPhiAtVtx"][keep], "charge": mu["l1_charge"][keep], "hwQual": mu["l1_hwQual"][keep],
        "barrel": np.ones(int(keep.sum()), bool), "bx": np.zeros(int(keep.sum()), np.int16),
    }  # fmt: skip


def punch_through(rng, n_events: int, gen: dict, luts: Luts) -> Candidates:
    """Poisson(``punch_through_rate``) two-station candidates per event: pT ~ pT^-alpha from the soft muons' lower
    edge, hwEta uniform in the barrel, φ uniform, quality 12 (fraction ``punch_through_q12_fraction``) or 13."""
    cfg, pop, bmtf = gen["fakes"], gen["population"], gen["bmtf"]
    counts = rng.poisson(cfg["punch_through_rate"], n_events)
    n = int(counts.sum())
    pt = power_law(rng.random(n), cfg["punch_through_alpha"], pop["soft_pt_min"], pop["pt_max"])
    hw_pt = np.clip(scales.pt_to_hw(pt), bmtf["hw_pt_min"], bmtf["hw_pt_max"])
    hw_eta = rng.integers(-HW_ETA_BARREL, HW_ETA_BARREL + 1, n)
    hw_phi = rng.integers(0, scales.N_PHI, n)
    quality = np.where(rng.random(n) < cfg["punch_through_q12_fraction"], 12, 13)
    charge = rng.choice(np.array([-1, 1]), n)
    return _candidates(np.repeat(np.arange(n_events), counts), hw_pt, hw_eta, hw_phi, charge, quality, luts)


def fake_candidates(rng, real: Candidates, n_events: int, gen: dict, luts: Luts) -> list[Candidates]:
    """Ghosts of ``real`` (the block's real candidates), out-of-time muons and punch-through, in that draw order."""
    ghost = ghosts(rng, real, gen, luts)
    late = out_of_time(rng, n_events, gen, luts)
    return [ghost, late, punch_through(rng, n_events, gen, luts)]
