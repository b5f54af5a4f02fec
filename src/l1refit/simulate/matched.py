"""The matched, selected barrel sample straight from the per-muon chain: what the skim of a ZeroBias file keeps.

No files and no events: each L1 candidate is compared with the offline muon it came from, after the cuts of the
config's ``selection:`` (those of the skim). It is the calibration's sample (docs/physics.md §6); a fixed seed gives
common random numbers, so its metrics change smoothly with the detector parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from l1refit import scales
from l1refit.analysis.metrics import Windows, metrics, residuals
from l1refit.simulate.chain import l1_physical, simulate_muons, tf_muon_index, zerobias_truth
from l1refit.simulate.detector import INVALID
from l1refit.simulate.ugmt import Luts, build_luts
from l1refit.skim.selection import OFFLINE_IDS, Selection


@dataclass
class MatchedSample:
    """Selected matched muons: NN inputs (hardware integers at the vertex) and offline targets."""

    hw_pt: np.ndarray
    hw_eta: np.ndarray
    hw_phi: np.ndarray
    charge: np.ndarray
    l1: dict[str, np.ndarray]  # physical at vertex: pt, eta, phi
    reco: dict[str, np.ndarray]  # offline: pt, eta, phi

    def gmt_residuals(self) -> dict[str, np.ndarray]:
        l1, reco = self.l1, self.reco
        return residuals(l1["phi"], l1["eta"], l1["pt"], reco["phi"], reco["eta"], reco["pt"])

    def bayes_inputs(self) -> dict:
        """The mapping :func:`l1refit.ml.baselines.bayes_limit` takes."""
        return {"hw_pt": self.hw_pt, "hw_eta": self.hw_eta, "charge": self.charge, "l1": self.l1, "reco": self.reco}


def selected_pairs(muons: dict[str, np.ndarray], l1: dict[str, np.ndarray], selection: Selection) -> np.ndarray:
    """Mask of the muons whose L1 candidate and offline muon pass ``selection`` and match at station 2.

    The chain's candidates are all in BX 0 and alone in their wedge (rank 0 in tfMuonIndex); BX ±1 copies exist only
    in the event files, so a selection of another BX keeps nothing.
    """
    tf_lo, tf_hi = selection.tf_muon_index
    pt_lo, pt_hi = selection.l1_pt
    tf_index = tf_muon_index(muons["barrel"], l1["etaSt"], muons["l1_hwPhi"], 0)
    id_field = OFFLINE_IDS[selection.offline_id]
    offline_id = True if id_field is None else muons[f"off_{id_field}"]
    dr2 = scales.delta_phi(l1["phiSt"], muons["off_phiSt2"]) ** 2 + (l1["etaSt"] - muons["off_etaSt2"]) ** 2
    return (
        muons["has_l1"] & (selection.bx == 0) & (tf_index >= tf_lo) & (tf_index <= tf_hi)
        & (muons["l1_hwQual"] >= selection.min_quality) & (l1["pt"] > pt_lo) & (l1["pt"] < pt_hi)
        & (muons["off_etaSt2"] != INVALID) & (muons["off_phiSt2"] != INVALID) & offline_id
        & (muons["off_pt"] >= selection.offline_min_pt)
        & (dr2 < selection.match_dr2)
    )  # fmt: skip


def matched_sample(
    gen: dict, n: int, seed: int, luts: Luts | None = None, *, selection: Mapping[str, Any] | None
) -> MatchedSample:
    """Generate ``n`` ZeroBias muons and keep the L1–offline pairs that pass ``selection`` (config ``selection:``)."""
    luts = luts or build_luts(gen)
    rng = np.random.default_rng(seed)
    mu = simulate_muons(rng, zerobias_truth(rng, n, gen), gen, luts)
    l1 = l1_physical(mu)
    keep = selected_pairs(mu, l1, Selection.from_config(selection))
    return MatchedSample(
        hw_pt=mu["l1_hwPt"][keep], hw_eta=mu["l1_hwEtaAtVtx"][keep], hw_phi=mu["l1_hwPhiAtVtx"][keep],
        charge=mu["l1_charge"][keep],
        l1={k: l1[k][keep] for k in ("pt", "eta", "phi")},
        reco={k: mu[f"off_{k}"][keep] for k in ("pt", "eta", "phi")},
    )  # fmt: skip


def simulated_gmt_metrics(
    gen: dict, n: int, seed: int, windows: Windows | None = None, *, selection: Mapping[str, Any] | None
) -> dict[str, float]:
    """The nine GMT-vs-offline metrics of the synthetic detector, on its matched sample."""
    return metrics(matched_sample(gen, n, seed, selection=selection).gmt_residuals(), windows)
