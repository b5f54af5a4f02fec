"""The non-network baselines of Table 2 and the physical limit, all on the same hardware inputs as the network.

A look-up table (per-cell mean offsets: what an FPGA could hold), an off-the-shelf boosted-tree regressor, and the
Bayes limit (docs/physics.md §6.4): cross-fitted per-cell oracles, the best any model of these inputs can do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from l1refit.analysis.metrics import VARIABLES, Windows, metrics
from l1refit.ml.cells import CellTable
from l1refit.ml.targets import corrected, offsets
from l1refit.scales import wrap_phi

GBDT_INPUTS = ("hwPhiAtVtx", "hwEtaAtVtx", "hwPt", "charge")  # the paper's NN inputs, in its order
GBDT_DEFAULTS = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31, "early_stopping": False}
# CellTable pooling per target: pool sparse cells along the input the offset hardly depends on (ml/cells.py).
LUT_POOL_ALONG = {"phi": "eta", "eta": "pt", "pt": "eta"}


def _cells(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The LUT address: the hardware inputs the offsets depend on (φ left out by rotational invariance)."""
    return df["hwPt"].to_numpy(), df["hwEtaAtVtx"].to_numpy(), df["charge"].to_numpy()


def lut_baseline(train_df: pd.DataFrame, test_df: pd.DataFrame) -> pd.DataFrame:
    """Per-cell mean offsets over (hwPt, hwEtaAtVtx, charge), fitted on ``train_df``, applied to ``test_df``.

    Returns ``test_df`` (its index kept) with ``pred_phi, pred_eta, pred_pt`` beside it. The table is what an FPGA
    could hold, and it is the limit a squared-error NN on the same targets and the same cell-valued inputs
    converges to; hwPhiAtVtx is left out because the offsets are rotation invariant. For pT the table holds the
    mean ΔpT (GeV) like the NN target; inside a cell of fixed hwPt, L1 pT is constant, so this is exactly the
    conditional mean of the offline pT. Sparse cells fall back to pooled neighbours (CellTable).
    """
    target = offsets(train_df)
    x_train, x_test = _cells(train_df), _cells(test_df)
    pred = {
        v: CellTable("mean", pool_along=LUT_POOL_ALONG[v]).fit(*x_train, target[v]).predict(*x_test) for v in VARIABLES
    }
    return test_df.assign(**corrected(test_df, pred))


def gbdt_baseline(train_df: pd.DataFrame, test_df: pd.DataFrame, seed: int = 0, **hyper) -> pd.DataFrame:
    """One HistGradientBoostingRegressor per offset on the paper's four inputs, fitted on ``train_df``.

    Returns ``test_df`` with the corrected values beside it, as :func:`lut_baseline`. Defaults (``GBDT_DEFAULTS``,
    overridable through ``hyper``) switch early stopping off so no random validation split is drawn; with
    ``random_state=seed`` (which also seeds the bin-edge subsample above 200k rows) the fit is deterministic, bit
    for bit.
    """
    params = GBDT_DEFAULTS | hyper | {"random_state": seed}
    target = offsets(train_df)
    x_train = train_df[list(GBDT_INPUTS)].to_numpy(np.float64)
    x_test = test_df[list(GBDT_INPUTS)].to_numpy(np.float64)
    from sklearn.ensemble import HistGradientBoostingRegressor  # only the GBDT jobs pay for scikit-learn

    pred = {v: HistGradientBoostingRegressor(**params).fit(x_train, target[v]).predict(x_test) for v in VARIABLES}
    return test_df.assign(**corrected(test_df, pred))


def _oracle_targets(l1: dict, reco: dict) -> dict[str, np.ndarray]:
    """What the oracles learn: φ_off − φ_L1 (wrapped), η_off − η_L1, and log pT_off (for the 1/pT_off moments).

    Offline − L1, the opposite sign of :func:`~l1refit.ml.targets.offsets`, since an oracle's estimate is added to
    the L1 value; φ is wrapped after the subtraction, so this is not bit for bit the negated offset.
    """
    return {"phi": wrap_phi(reco["phi"] - l1["phi"]), "eta": reco["eta"] - l1["eta"], "pt": np.log(reco["pt"])}


def _rms_oracle(x_tr, t_tr: dict, x_te) -> dict[str, np.ndarray]:
    """The RMS-optimal per-cell estimates on ``x_te``: mean φ_off − φ_L1 and η_off − η_L1, and the offline pT
    p = E[1/y]/E[1/y²], which minimises E[((p − y)/y)²] (the ΔpT/pT RMS), fitted on (``x_tr``, ``t_tr``)."""
    out = {var: CellTable("mean", pool_along="pt" if var == "eta" else "eta").fit(*x_tr, t_tr[var]).predict(*x_te)
           for var in ("phi", "eta")}  # fmt: skip
    y_tr = np.exp(t_tr["pt"])
    inv1 = CellTable("mean").fit(*x_tr, 1.0 / y_tr).predict(*x_te)
    inv2 = CellTable("mean").fit(*x_tr, 1.0 / y_tr**2).predict(*x_te)
    out["pt"] = inv1 / inv2
    return out


def event_index(df: pd.DataFrame) -> tuple[int, np.ndarray]:
    """(number of events, each row's event number 0 … n−1) from the skim's event keys ``part`` and ``entry``."""
    event = df["part"].to_numpy(np.int64) * (1 << 40) + df["entry"].to_numpy(np.int64)
    events, index = np.unique(event, return_inverse=True)
    return len(events), index


def bayes_corrections(df: pd.DataFrame, seed: int = 0) -> dict[str, np.ndarray]:
    """The cross-fitted RMS-optimal per-cell correction of every muon of ``df`` (skim columns with offline truth):
    ``pred_phi`` (wrapped), ``pred_eta``, ``pred_pt``, each muon corrected by tables fitted on the other half of the
    events (halves drawn with ``seed``; a whole event on one side, so a dimuon's two muons never train each other).

    The best per-muon re-fit of these inputs for the RMS: applied to a mass dataset, the widths any per-muon
    network could reach (README "The mass-resolution limit")."""
    for column in ("part", "entry", "hwPt", "hwEtaAtVtx", "charge", "l1_phi", "l1_eta", "l1_pt", "reco_phi",
                   "reco_eta", "reco_pt"):  # fmt: skip
        if column not in df.columns:
            raise ValueError(f"the Bayes correction needs column {column!r} (offline truth and event keys)")
    n_events, index = event_index(df)
    first = (np.random.default_rng(seed).permutation(n_events) < n_events // 2)[index]
    x = _cells(df)
    l1 = {v: df[f"l1_{v}"].to_numpy(np.float64) for v in ("phi", "eta", "pt")}
    targets = _oracle_targets(l1, {v: df[f"reco_{v}"].to_numpy(np.float64) for v in ("phi", "eta", "pt")})
    out = {f"pred_{v}": np.empty(len(df)) for v in ("phi", "eta", "pt")}
    for train in (first, ~first):
        test = ~train
        est = _rms_oracle(tuple(a[train] for a in x), {k: v[train] for k, v in targets.items()},
                          tuple(a[test] for a in x))  # fmt: skip
        out["pred_phi"][test] = wrap_phi(l1["phi"][test] + est["phi"])
        out["pred_eta"][test] = l1["eta"][test] + est["eta"]
        out["pred_pt"][test] = est["pt"]
    return out


def _oracle_residuals(train, test, windows: Windows) -> dict[str, dict[str, np.ndarray]]:
    """Residuals on ``test`` of the RMS-, core- and tail-optimal tables fitted on ``train``."""
    x_tr = (train["hw_pt"], train["hw_eta"], train["charge"])
    x_te = (test["hw_pt"], test["hw_eta"], test["charge"])
    t_tr, t_te = _oracle_targets(train["l1"], train["reco"]), _oracle_targets(test["l1"], test["reco"])
    out: dict[str, dict[str, np.ndarray]] = {"rms": {}, "core": {}, "tail": {}}
    rms = _rms_oracle(x_tr, t_tr, x_te)
    for var in ("phi", "eta"):
        wrap = wrap_phi if var == "phi" else (lambda d: d)
        along = "pt" if var == "eta" else "eta"
        out["rms"][var] = wrap(rms[var] - t_te[var])
        for name, half in (("core", windows.core[var]), ("tail", windows.tail[var])):
            start = CellTable("window", 2 * half, pool_along=along).fit(*x_tr, t_tr[var]).predict(*x_te)
            out[name][var] = wrap(start + half - t_te[var])
    y_te = np.exp(t_te["pt"])
    out["rms"]["pt"] = (rms["pt"] - y_te) / y_te
    for name, w in (("core", windows.core["pt"]), ("tail", windows.tail["pt"])):
        # |p − y|/y < w  ⇔  log y ∈ (log p − log(1+w), log p − log(1−w)): a window of fixed width in log y
        start = CellTable("window", np.log((1 + w) / (1 - w))).fit(*x_tr, t_tr["pt"]).predict(*x_te)
        p_hat = np.exp(start + np.log(1 + w))
        out[name]["pt"] = (p_hat - y_te) / y_te
    return out


def bayes_limit(sample: dict, windows: Windows | None = None, seed: int = 0) -> dict[str, float]:
    """Cross-fitted (two halves) physical-limit metrics: RMS from the RMS oracle, core and tail from theirs.

    ``sample`` holds ``hw_pt, hw_eta, charge`` (hardware inputs at the vertex) and ``l1``/``reco`` dicts of
    physical ``pt, eta, phi``.
    """
    windows = windows or Windows.from_config(None)
    n = sample["hw_pt"].size
    half = np.random.default_rng(seed).permutation(n) < n // 2

    def part(mask):
        return {k: ({kk: vv[mask] for kk, vv in v.items()} if isinstance(v, dict) else v[mask])
                for k, v in sample.items()}  # fmt: skip

    a, b = part(half), part(~half)
    res_ab, res_ba = _oracle_residuals(a, b, windows), _oracle_residuals(b, a, windows)
    row = {}
    for oracle in ("rms", "core", "tail"):
        res = {v: np.concatenate([res_ab[oracle][v], res_ba[oracle][v]]) for v in ("phi", "eta", "pt")}
        m = metrics(res, windows)
        row |= {k: m[k] for k in m if k.endswith(f"_{oracle}")}
    return row
