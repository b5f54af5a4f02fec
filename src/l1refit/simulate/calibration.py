"""Calibration of the synthetic detector against the paper's GMT row, and the Bayes-optimal limit (§6).

The calibration sample is the matched, selected barrel sample the skim produces, built here directly from
the per-muon chain (each L1 candidate is compared with the offline muon it came from, after the same cuts:
barrel track finder, quality ≥ 12, 2.5 < pT_L1 < 45 GeV, tight offline muon with valid station-2 coordinates,
ΔR² < 0.01 at station 2). Common random numbers (fixed seed) make the metrics smooth in the parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .. import scales
from ..metrics import METRIC_COLUMNS, Windows, metrics, paper_row, residuals
from .chain import l1_physical, simulate_muons, zerobias_truth
from .ugmt import build_luts

SELECTION = {"min_quality": 12, "l1_pt": (2.5, 45.0), "match_dr2": 0.01}
BEST_NN = {  # the paper's best network per metric (Table 2, bold), the yardstick for the Bayes limit
    "phi_rms": 0.117, "eta_rms": 0.031, "pt_rms": 0.165, "phi_core": 20.17, "eta_core": 5.34, "pt_core": 14.85,
    "phi_tail": 26.73, "eta_tail": 11.45, "pt_tail": 26.48,
}  # fmt: skip

# Free parameters of the fit (§6.1), in two stages as §6.2 suggests (the η block is nearly decoupled), with
# physically sensible ranges; everything else stays at its configured value.
STAGES: dict[str, dict[tuple[str, str], tuple[float, float]]] = {
    "eta": {
        ("eta", "fine_fraction"): (0.50, 0.90),
        ("eta", "fine_sigma"): (0.010, 0.030),
    },
    "phi_pt": {
        ("population", "soft_fraction"): (0.40, 0.85),
        ("population", "soft_alpha"): (4.0, 7.5),
        ("population", "mid_fraction"): (0.0, 0.25),
        ("population", "hard_pt_min"): (15.0, 30.0),
        ("propagation", "mb2_pt"): (3.3, 3.6),
        ("propagation", "k_loss"): (0.2, 0.8),
        ("bmtf", "threshold_quantile"): (0.03, 0.15),
        ("bmtf", "sigma_2"): (0.15, 0.35),
        ("bmtf", "sigma_3"): (0.11, 0.22),
        ("bmtf", "sigma_4"): (0.08, 0.14),
    },
}
# Metrics each stage fits, and the two no physically sensible parameters reach; they are reported, not fitted:
# * pt_core (paper 10.5 %): needs ~40 % of muons within ~4 % of the offline pT (§7 (3)), impossible with the
#   ≥ 10 % multiple-scattering floor of the L1 1/pT resolution and the +10–40 % scale of the 90 % rule.
# * phi_core (paper 14.8 %): the floor of the 4-bit uGMT Δφ LUT (LSB 43.6 mrad, §1.6) puts the GMT error of a
#   hard muon uniformly in (−44, 0] mrad (plus the −5.5 mrad MB2 floor), so at most ~18 % of hard muons fall in
#   ±8 mrad; with the hard fraction the φ tail allows (≤ 40 %) the GMT core stays below ~10 %.
STAGE_METRICS = {
    "eta": ("eta_rms", "eta_core", "eta_tail"),
    "phi_pt": ("phi_rms", "pt_rms", "phi_tail", "pt_tail"),
}
STAGE_BAYES = {"eta": ("eta_rms",), "phi_pt": ("phi_rms", "pt_rms")}
UNREACHABLE = ("phi_core", "pt_core")


@dataclass
class Sample:
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


def matched_sample(gen: dict, n: int, seed: int, luts=None) -> Sample:
    """Generate ``n`` ZeroBias muons and keep the matched, selected barrel L1–offline pairs."""
    luts = luts or build_luts(gen)
    rng = np.random.default_rng(seed)
    mu = simulate_muons(rng, zerobias_truth(rng, n, gen), gen, luts)
    l1 = l1_physical(mu)
    dr2 = scales.delta_phi(l1["phiSt"], mu["off_phiSt2"]) ** 2 + (l1["etaSt"] - mu["off_etaSt2"]) ** 2
    lo, hi = SELECTION["l1_pt"]
    keep = (
        mu["has_l1"] & mu["barrel"] & (mu["l1_hwQual"] >= SELECTION["min_quality"])
        & (l1["pt"] > lo) & (l1["pt"] < hi)
        & mu["off_isTightMuon"] & (mu["off_etaSt2"] != -9999.0)
        & (dr2 < SELECTION["match_dr2"])
    )  # fmt: skip
    return Sample(
        hw_pt=mu["l1_hwPt"][keep], hw_eta=mu["l1_hwEtaAtVtx"][keep], hw_phi=mu["l1_hwPhiAtVtx"][keep],
        charge=mu["l1_charge"][keep],
        l1={k: l1[k][keep] for k in ("pt", "eta", "phi")},
        reco={k: mu[f"off_{k}"][keep] for k in ("pt", "eta", "phi")},
    )  # fmt: skip


def gmt_metrics(gen: dict, n: int, seed: int, windows: Windows | None = None) -> dict[str, float]:
    """The nine GMT-vs-offline metrics of the synthetic detector."""
    return metrics(matched_sample(gen, n, seed).gmt_residuals(), windows)


TOLERANCE = {"rms": 0.10, "core": 3.0, "tail": 3.0}  # relative for RMS, percentage points for core and tail


def _scaled(key: str, ours: float, target: float) -> float:
    """Deviation in units of the acceptance tolerance (|x| ≤ 1 is within it)."""
    kind = key.split("_")[1]
    return (ours - target) / (TOLERANCE[kind] * target) if kind == "rms" else (ours - target) / TOLERANCE[kind]


def loss(ours: dict[str, float], target: dict[str, float], keys=METRIC_COLUMNS) -> float:
    """Σ squared deviations in units of the tolerance over ``keys`` (§6.2, normalised to the acceptance)."""
    return float(sum(_scaled(k, ours[k], target[k]) ** 2 for k in keys))


BAYES_BAND = (0.85, 1.0)  # the Bayes-optimal RMS should lie within [0.85, 1] x the paper's best network


def bayes_penalty(limit: dict[str, float], keys=("phi_rms", "eta_rms", "pt_rms")) -> float:
    """§6.2's second term: the Bayes-optimal RMS should be at least as good as the paper's best network, and not
    far better (the network came close to the limit), in units of 5 % of the network's value."""
    total = 0.0
    for k in keys:
        lo, hi = (f * BEST_NN[k] for f in BAYES_BAND)
        outside = max(0.0, limit[k] - hi) + max(0.0, lo - limit[k])
        total += (outside / (0.05 * BEST_NN[k])) ** 2
    return float(total)


def _sample_dict(sample: Sample) -> dict:
    return {
        "hw_pt": sample.hw_pt, "hw_eta": sample.hw_eta, "charge": sample.charge, "l1": sample.l1, "reco": sample.reco
    }  # fmt: skip


def with_values(gen: dict, free, values) -> dict:
    out = copy.deepcopy(gen)
    for (group, key), value in zip(free, values, strict=True):
        out[group][key] = float(value)
    return out


def fit(
    gen: dict,
    *,
    n: int = 300_000,
    seed: int = 7,
    max_evals: int = 250,
    bayes_weight: float = 1.0,
    windows: Windows | None = None,
    progress: Callable[[str], None] = print,
) -> tuple[dict, dict[str, float]]:
    """Fit the free parameters stage by stage (Nelder–Mead in box-normalised coordinates, common random numbers).

    Each stage adds the Bayes-limit penalty (cross-fitted on the same sample) of its variables, so the fit prefers
    detectors whose learnable share of the error is as large as the paper implies.
    """
    from ..baselines import bayes_limit

    target = paper_row("GMT")
    for stage, free in STAGES.items():
        bounds = np.array(list(free.values()))
        x0 = np.array([gen[g][k] for g, k in free])
        x0 = np.clip((x0 - bounds[:, 0]) / (bounds[:, 1] - bounds[:, 0]), 0.0, 1.0)
        state = {"calls": 0, "best": np.inf}

        def objective(x, gen=gen, free=free, bounds=bounds, stage=stage, state=state):
            trial = with_values(gen, free, bounds[:, 0] + np.clip(x, 0, 1) * (bounds[:, 1] - bounds[:, 0]))
            sample = matched_sample(trial, n, seed)
            value = loss(metrics(sample.gmt_residuals(), windows), target, STAGE_METRICS[stage])
            if bayes_weight:
                limit = bayes_limit(_sample_dict(sample), windows, seed=seed)
                value += bayes_weight * bayes_penalty(limit, STAGE_BAYES[stage])
            state["calls"] += 1
            if value < state["best"]:
                state["best"] = value
                values = ", ".join(f"{k}={trial[g][k]:.4g}" for g, k in free)
                progress(f"  {stage} evaluation {state['calls']}: loss {value:.4f}  ({values})")
            return value

        progress(f"calibration stage {stage!r}: {len(free)} parameters, metrics {', '.join(STAGE_METRICS[stage])}")
        result = minimize(
            objective, x0, method="Nelder-Mead", bounds=[(0, 1)] * len(free),
            options={"maxfev": max_evals, "xatol": 2e-3, "fatol": 1e-3, "adaptive": True},
        )  # fmt: skip
        gen = with_values(gen, free, bounds[:, 0] + np.clip(result.x, 0, 1) * (bounds[:, 1] - bounds[:, 0]))
    return gen, gmt_metrics(gen, n, seed, windows)


def deviation(ours: dict[str, float], paper: dict[str, float]) -> dict[str, float]:
    """RMS: relative deviation (fraction); core and tail: difference in percentage points."""
    return {
        k: (ours[k] - paper[k]) / paper[k] if k.endswith("_rms") else ours[k] - paper[k] for k in METRIC_COLUMNS
    }


def within_tolerance(dev: dict[str, float]) -> dict[str, bool]:
    return {k: abs(v) <= TOLERANCE[k.split("_")[1]] + 1e-12 for k, v in dev.items()}


def calibration_table(gen: dict, *, n: int, seed: int, n_bayes: int, bayes_seed: int, windows=None):
    """The rows of generator_calibration.csv: paper vs synthetic GMT, deviations, and the Bayes limit.

    The Bayes limit is cross-fitted on an independent sample (``bayes_seed``) of ``n_bayes`` muons.
    """
    import pandas as pd

    from ..baselines import bayes_limit

    luts = build_luts(gen)
    ours = metrics(matched_sample(gen, n, seed, luts).gmt_residuals(), windows)
    paper = paper_row("GMT")
    dev = deviation(ours, paper)
    ok = within_tolerance(dev)
    limit = bayes_limit(_sample_dict(matched_sample(gen, n_bayes, bayes_seed, luts)), windows, seed=bayes_seed)
    rows = {
        "paper_gmt": paper,
        "synthetic_gmt": ours,
        "deviation": dev,
        "within_tolerance": {k: float(v) for k, v in ok.items()},
        "paper_best_nn": BEST_NN,
        "bayes_limit": limit,
    }
    table = pd.DataFrame([{"row": name, **{k: vals[k] for k in METRIC_COLUMNS}} for name, vals in rows.items()])
    return table


def write_calibration_table(path, gen: dict, *, n: int, seed: int, n_bayes: int, bayes_seed: int, windows=None):
    """Compute :func:`calibration_table` and write it atomically as CSV; print it for the log."""
    from ..io import atomic_path

    table = calibration_table(gen, n=n, seed=seed, n_bayes=n_bayes, bayes_seed=bayes_seed, windows=windows)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return table
