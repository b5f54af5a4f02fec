"""The per-muon chain of docs/physics.md §0, vectorised: truth → offline → stations → BMTF → uGMT.

:func:`simulate_muons` takes any truth (the tracker-level particle) and returns, per muon, the offline muon and the
L1 candidate (if any) in hardware units at the station and at the vertex; :func:`zerobias_truth` draws the
ZeroBias-like single-muon mixture (docs/physics.md §4).
"""

from __future__ import annotations

import numpy as np

from l1refit import scales
from l1refit.simulate.bmtf import measure, propagate
from l1refit.simulate.detector import Truth, offline, power_law
from l1refit.simulate.ugmt import Luts, extrapolate


def zerobias_truth(rng, n: int, gen: dict) -> Truth:
    """Single muons from the soft / intermediate / hard power-law mixture (§4); η flat, φ flat, μ+/μ− ≈ 1.07."""
    pop = gen["population"]
    u = rng.random((4, n))
    soft, mid = pop["soft_fraction"], pop["mid_fraction"]
    pt = np.where(
        u[0] < soft,
        power_law(u[1], pop["soft_alpha"], pop["soft_pt_min"], pop["pt_max"]),
        np.where(
            u[0] < soft + mid,
            power_law(u[1], pop["mid_alpha"], pop["mid_pt_min"], pop["pt_max"]),
            power_law(u[1], pop["hard_alpha"], pop["hard_pt_min"], pop["pt_max"]),
        ),
    )
    eta = pop["eta_max"] * (2.0 * u[2] - 1.0)
    phi = rng.uniform(-np.pi, np.pi, n)
    ratio = pop["charge_ratio"]
    q = np.where(u[3] < ratio / (1.0 + ratio), 1, -1).astype(np.int8)
    return Truth(pt, eta, phi, q)


def decay_in_flight(rng, truth: Truth, gen: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(muon pT, φ kink, is-DIF flag): a fraction of tracks are hadrons whose muon carries z ~ U(z_min, 1) (§4)."""
    dif = gen["decay_in_flight"]
    n = len(truth)
    u = rng.random((2, n))
    kink = dif["kink"] * rng.standard_normal(n)
    frac = np.interp(truth.pt, [6.0, 15.0], [dif["fraction_low"], dif["fraction_high"]])
    is_dif = u[0] < frac
    z = dif["z_min"] + (1.0 - dif["z_min"]) * u[1]
    return np.where(is_dif, z * truth.pt, truth.pt), np.where(is_dif, kink, 0.0), is_dif


def simulate_muons(rng, truth: Truth, gen: dict, luts: Luts) -> dict[str, np.ndarray]:
    """Run the detector chain on every truth particle; keys ``off_*`` (offline), ``l1_*`` (L1) and flags."""
    pt_mu, kink, is_dif = decay_in_flight(rng, truth, gen)
    station = propagate(rng, pt_mu, truth.eta, truth.phi, truth.q, kink, gen)
    l1 = measure(rng, pt_mu, truth.q, station, gen)
    eta_vtx, phi_vtx = extrapolate(l1["hwPt"], l1["hwEta"], l1["hwPhi"], l1["charge"], luts)
    reco = offline(rng, truth, station.z0, station.reach_mb2, gen)
    out = {f"off_{k}": v for k, v in reco.items()} | {"off_z0": station.z0}
    out |= {f"l1_{k}": v for k, v in l1.items() if k not in ("has_l1", "barrel")}
    out |= {
        "has_l1": l1["has_l1"],
        "barrel": l1["barrel"],
        "l1_hwEtaAtVtx": eta_vtx,
        "l1_hwPhiAtVtx": phi_vtx,
        "station_eta": station.eta,
        "is_dif": is_dif,
    }
    return out


def tf_muon_index(barrel, eta, hw_phi, rank) -> np.ndarray:
    """tfMuonIndex (docs/formats.md §5): BMTF wedge (hwPhi+24)//48 → 36..71, OMTF sector → 18..35 (η>0) / 72..89.

    ``rank`` is the candidate's rank among those of its event, BX and wedge (the link's muon index, at most 2).
    """
    wedge = np.mod(hw_phi + 24, 576) // 48
    sector = np.mod(hw_phi - 24, 576) // 96
    omtf = np.where(eta > 0, 18, 72) + 3 * sector
    return (np.where(barrel, 36 + 3 * wedge, omtf) + np.minimum(rank, 2)).astype(np.int16)


def l1_physical(muons: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CMSSW-convention physical L1 values (what the L1Ntuple stores) at the vertex and at the station."""
    return {
        "pt": scales.hw_to_pt(muons["l1_hwPt"]),
        "eta": scales.hw_to_eta(muons["l1_hwEtaAtVtx"]),
        "phi": scales.hw_to_phi(muons["l1_hwPhiAtVtx"]),
        "etaSt": scales.hw_to_eta(muons["l1_hwEta"]),
        "phiSt": scales.hw_to_phi(muons["l1_hwPhi"]),
    }
