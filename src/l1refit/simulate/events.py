"""Synthetic L1Ntuple-layout files: ZeroBias and MuOnia events from the per-muon chain (docs/physics.md §4, §5),
with the junk a real ntuple has (BX ±1 copies, unmatched fakes, overlap muons) so that the skim has real work, and
the fake barrel L1 muons of :mod:`.fakes` (ghosts, out-of-time muons, punch-through; docs/physics.md §4.1).

Files are made in blocks of :data:`BLOCK` events, each with its own random stream from (seed, part, block): the
same seed gives identical files, another part independent draws, and memory stays bounded. The fakes of
:mod:`.fakes` draw from a second stream per block (:func:`fake_block_rng`), so their parameters never change the
rest of the block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np

from l1refit import scales
from l1refit.formats import l1ntuple, nanoaod
from l1refit.simulate import fakes
from l1refit.simulate.chain import simulate_muons, tf_muon_index, zerobias_truth
from l1refit.simulate.detector import Truth, power_law
from l1refit.simulate.resonances import STATES, sample_dimuons
from l1refit.simulate.ugmt import Luts, build_luts, extrapolate

log = logging.getLogger(__name__)

BLOCK = 50_000  # events per random-stream block (fixed: changing it changes the files)
RUN = 1  # synthetic run number
EVENTS_PER_LUMI = 50_000
N_BX = 3564

_OFFLINE_FIELDS = ("pt", "eta", "phi", "charge", "etaSt1", "phiSt1", "etaSt2", "phiSt2", "isLooseMuon",
                   "isMediumMuon", "isTightMuon", "iso", "z0")  # fmt: skip


def _fake_candidates(rng, n_events: int, gen: dict, luts: Luts) -> dict[str, np.ndarray]:
    """Uniform-noise unmatched L1 candidates: Poisson per event, barrel, soft pT, quality 12 (the other fakes: §4.1)."""
    pop = gen["population"]
    counts = rng.poisson(gen["extras"]["unmatched_rate"], n_events)
    n = int(counts.sum())
    hw_eta = rng.integers(-76, 77, n).astype(np.int16)
    hw_phi = rng.integers(0, 576, n).astype(np.int16)
    hw_pt = scales.pt_to_hw(power_law(rng.random(n), pop["soft_alpha"], pop["soft_pt_min"], pop["pt_max"]))
    hw_pt = np.clip(hw_pt, gen["bmtf"]["hw_pt_min"], gen["bmtf"]["hw_pt_max"]).astype(np.int16)
    charge = rng.choice(np.array([-1, 1], np.int8), n)
    eta_vtx, phi_vtx = extrapolate(hw_pt, hw_eta, hw_phi, charge, luts)
    return {
        "event": np.repeat(np.arange(n_events), counts), "hwPt": hw_pt, "hwEta": hw_eta, "hwPhi": hw_phi,
        "hwEtaAtVtx": eta_vtx, "hwPhiAtVtx": phi_vtx, "charge": charge, "hwQual": np.full(n, 12, np.int16),
        "barrel": np.ones(n, bool), "bx": np.zeros(n, np.int16),
    }  # fmt: skip


def _l1_candidates(rng, event, mu: dict, gen: dict, luts: Luts, n_events: int, fake_rng) -> dict[str, np.ndarray]:
    """Real candidates, their BX ±1 copies and the fakes, sorted per event as the ntuple stores them.

    ``rng`` draws the copies and the noise candidates, ``fake_rng`` the fakes of :mod:`.fakes` (§4.1).
    """
    has = mu["has_l1"]
    real = {
        "event": event[has], "hwPt": mu["l1_hwPt"][has], "hwEta": mu["l1_hwEta"][has], "hwPhi": mu["l1_hwPhi"][has],
        "hwEtaAtVtx": mu["l1_hwEtaAtVtx"][has], "hwPhiAtVtx": mu["l1_hwPhiAtVtx"][has],
        "charge": mu["l1_charge"][has], "hwQual": mu["l1_hwQual"][has], "barrel": mu["barrel"][has],
        "bx": np.zeros(int(has.sum()), np.int16),
    }  # fmt: skip
    copy = rng.random(real["event"].size) < gen["extras"]["bx_neighbour_prob"]
    neighbours = {k: v[copy] for k, v in real.items()}
    neighbours["bx"] = rng.choice(np.array([-1, 1], np.int16), int(copy.sum()))
    extra = fakes.fake_candidates(fake_rng, real, n_events, gen, luts)
    extra = [{k: p[k].astype(real[k].dtype, copy=False) for k in real} for p in extra]  # never widen a column
    parts = (real, neighbours, _fake_candidates(rng, n_events, gen, luts), *extra)
    cand = {k: np.concatenate([p[k] for p in parts]) for k in real}
    order = np.lexsort((-cand["hwQual"], -cand["hwPt"], cand["bx"], cand["event"]))
    cand = {k: v[order] for k, v in cand.items()}
    # rank of a candidate among those of the same event, BX and track-finder wedge (the link's muon index)
    wedge = np.where(cand["barrel"], np.mod(cand["hwPhi"] + 24, 576) // 48, 100 + np.mod(cand["hwPhi"] - 24, 576) // 96)
    key = (cand["event"].astype(np.int64) * 8 + cand["bx"] + 4) * 256 + wedge
    by_key = np.argsort(key, kind="stable")
    sorted_key = key[by_key]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    rank = np.empty(key.size, np.int64)
    rank[by_key] = np.arange(key.size) - np.repeat(starts, np.diff(np.r_[starts, key.size]))
    eta = scales.hw_to_eta(cand["hwEta"])
    cand["tfMuonIndex"] = tf_muon_index(cand["barrel"], eta, cand["hwPhi"], rank)
    return cand


def _assemble(event, mu: dict, cand: dict, n_events: int, first_event: int, rng) -> ak.Array:
    """The L1Ntuple-layout event array the Writer takes (L1 floats are filled from the hardware values)."""
    off_counts = np.bincount(event, minlength=n_events)
    l1_counts = np.bincount(cand["event"], minlength=n_events)
    muon = ak.unflatten(ak.zip({k: mu[f"off_{k}"] for k in _OFFLINE_FIELDS}), off_counts)
    l1 = ak.unflatten(
        ak.zip({k: cand[k] for k in ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual",
                                       "tfMuonIndex", "bx")}),
        l1_counts,
    )  # fmt: skip
    index = first_event + np.arange(n_events, dtype=np.int64)
    return ak.zip(
        {
            "run": np.full(n_events, RUN, np.uint32),
            "lumi": (1 + index // EVENTS_PER_LUMI).astype(np.uint32),
            "event": (index + 1).astype(np.uint64),
            "bx": rng.integers(1, N_BX + 1, n_events).astype(np.uint32),
            "orbit": (index * 37 + 1).astype(np.uint64),
            "L1Mu": l1,
            "Muon": muon,
        },
        depth_limit=1,
    )


def zerobias_block(rng, n_events: int, gen: dict, luts: Luts, first_event: int = 0, *, fake_rng=None) -> ak.Array:
    """ZeroBias-like events: one muon from the §4 mixture, sometimes a second independent one.

    ``fake_rng`` draws the fakes of §4.1 (default: :func:`fakes.stream` of ``rng``, the same as :func:`fake_block_rng`
    for a :func:`block_rng` stream).
    """
    fake_rng = fakes.stream(rng) if fake_rng is None else fake_rng
    second = rng.random(n_events) < gen["population"]["second_muon_prob"]
    event = np.sort(np.concatenate([np.arange(n_events), np.flatnonzero(second)]))
    mu = simulate_muons(rng, zerobias_truth(rng, event.size, gen), gen, luts)
    cand = _l1_candidates(rng, event, mu, gen, luts, n_events, fake_rng)
    return _assemble(event, mu, cand, n_events, first_event, rng)


def _hlt_accept(cfg: dict) -> Callable[[dict], np.ndarray]:
    """HLT-like MuOnia selection on the generated muons (§5): both in the barrel above range-out, and either a
    barrel-dimuon trigger (pT(μμ) over the state's threshold, |y| below the cut) or a MuX_TkMu0 trigger."""
    thresholds = np.array([cfg["dimuon_pt_min"][s] for s in STATES])

    def accept(ev: dict) -> np.ndarray:
        legs = (
            (ev["pt1"] > cfg["muon_pt_min"]) & (ev["pt2"] > cfg["muon_pt_min"])
            & (np.abs(ev["eta1"]) < cfg["eta_max"]) & (np.abs(ev["eta2"]) < cfg["eta_max"])
        )  # fmt: skip
        dimuon = (ev["parent_pt"] > thresholds[ev["state"]]) & (np.abs(ev["parent_y"]) < cfg["rapidity_max"])
        mux_tkmu = np.maximum(ev["pt1"], ev["pt2"]) > cfg["leading_pt_min"]
        return legs & (dimuon | mux_tkmu)

    return accept


def muonia_block(rng, n_events: int, gen: dict, luts: Luts, first_event: int = 0, *, fake_rng=None) -> ak.Array:
    """MuOnia-like events: one selected opposite-charge dimuon per event (resonance or continuum); ``fake_rng`` as
    in :func:`zerobias_block`."""
    fake_rng = fakes.stream(rng) if fake_rng is None else fake_rng
    cfg = gen["muonia"]
    pt_min = {s: max(0.0, min(cfg["dimuon_pt_min"][s], cfg["leading_pt_min"] - 6.0) - 1.0) for s in STATES}
    dimu = sample_dimuons(rng, n_events, cfg["fractions"], accept=_hlt_accept(cfg), pt_min=pt_min)
    truth = Truth(
        pt=np.stack([dimu["pt1"], dimu["pt2"]], 1).ravel(),
        eta=np.stack([dimu["eta1"], dimu["eta2"]], 1).ravel(),
        phi=np.stack([dimu["phi1"], dimu["phi2"]], 1).ravel(),
        q=np.stack([dimu["q1"], dimu["q2"]], 1).ravel().astype(np.int8),
    )
    event = np.repeat(np.arange(n_events), 2)
    mu = simulate_muons(rng, truth, gen, luts)
    cand = _l1_candidates(rng, event, mu, gen, luts, n_events, fake_rng)
    return _assemble(event, mu, cand, n_events, first_event, rng)


POPULATIONS = {"zerobias": zerobias_block, "muonia": muonia_block}
LAYOUTS = {"l1ntuple": l1ntuple.Writer, "nanoaod": nanoaod.Writer}  # file layout -> writer


def block_rng(seed: int, part: int, block: int) -> np.random.Generator:
    """Independent, reproducible stream per (dataset seed, file index, block index)."""
    return np.random.default_rng(np.random.SeedSequence([seed, part, block]))


def fake_block_rng(seed: int, part: int, block: int) -> np.random.Generator:
    """The stream of the fakes of §4.1 in that block: (seed, part, block, 1), independent of :func:`block_rng`'s."""
    return np.random.default_rng(np.random.SeedSequence([seed, part, block, fakes.STREAM_KEY]))


def generate_file(
    path: str | Path,
    population: str,
    n_events: int,
    *,
    seed: int,
    part: int,
    gen: dict,
    luts: Luts | None = None,
    layout: str = "l1ntuple",
) -> None:
    """Write one synthetic file (atomically), block by block, in the L1Ntuple or the NanoAOD (``nanoaod``) layout.

    The events are the same in both layouts; the NanoAOD one is the central flavour (:mod:`l1refit.formats.nanoaod`).
    """
    if population not in POPULATIONS:
        raise ValueError(f"unknown population {population!r}; allowed: {', '.join(POPULATIONS)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown synthetic file layout {layout!r}; allowed: {', '.join(LAYOUTS)}")
    luts = luts or build_luts(gen)
    make = POPULATIONS[population]
    with LAYOUTS[layout](path) as writer:
        for block, start in enumerate(range(0, n_events, BLOCK)):
            size = min(BLOCK, n_events - start)
            rng, fake_rng = block_rng(seed, part, block), fake_block_rng(seed, part, block)
            events = make(rng, size, gen, luts, first_event=part * n_events + start, fake_rng=fake_rng)
            writer.extend(events)
            log.info("%s part %d: %d/%d events", population, part, start + size, n_events)
