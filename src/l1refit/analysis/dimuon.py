"""Opposite-charge dimuon pairs from a skim and their invariant masses (vector's Lorentz-vector behaviour).

Pairs are formed per event (the skim's ``part`` and ``entry`` identify it) from every two matched barrel muons
whose **L1** charges are opposite: the selection a trigger or scouting analysis can make, so the GMT, network
and offline masses are computed for the same pairs and differ only by the muon kinematics. The muon mass comes
from the ``particle`` package.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pandas as pd
import vector
from particle import Particle

vector.register_awkward()

MUON_MASS = Particle.from_pdgid(13).mass / 1000.0  # GeV
EVENT_KEYS = ("part", "entry")

# Which columns hold the kinematics of each source of muon momenta.
SOURCES: dict[str, tuple[str, str, str]] = {
    "GMT": ("l1_pt", "l1_eta", "l1_phi"),
    "NN": ("pred_pt", "pred_eta", "pred_phi"),
    "offline": ("reco_pt", "reco_eta", "reco_phi"),
    "FPGA": ("fpga_pt", "fpga_eta", "fpga_phi"),  # the emulated firmware (l1refit.deploy.fpga), where it ran
    "NN (ZeroBias)": ("zb_pt", "zb_eta", "zb_phi"),  # the unweighted network, when NN is the reweighted one
    "limit": ("limit_pt", "limit_eta", "limit_phi"),  # the cross-fitted per-cell optimum (ml.baselines)
    # where the mass resolution goes: one correction applied to pT or to the angles only
    "NN pT only": ("pred_pt", "l1_eta", "l1_phi"),
    "NN angles only": ("l1_pt", "pred_eta", "pred_phi"),
    "limit pT only": ("limit_pt", "l1_eta", "l1_phi"),
    "limit angles only": ("l1_pt", "limit_eta", "limit_phi"),
}
FIGURE_SOURCES = ("GMT", "NN", "FPGA", "limit", "offline")  # Figure 3 and the fit overlay; the rest: the table


def _check_columns(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: column(s) {', '.join(missing)} missing (have {', '.join(df.columns)})")


def by_event(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows grouped by event (stable sort on part, entry) and the number of rows per event."""
    _check_columns(df, (*EVENT_KEYS, "charge"), "dimuon pairs")
    ordered = df.sort_values(list(EVENT_KEYS), kind="stable").reset_index(drop=True)
    keys = ordered[list(EVENT_KEYS)].to_numpy()
    new_event = np.ones(len(keys), dtype=bool)
    new_event[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    starts = np.flatnonzero(new_event)
    counts = np.diff(np.append(starts, len(keys)))
    return ordered, counts


def pair_masses(df: pd.DataFrame, sources=("GMT", "NN", "offline")) -> dict[str, np.ndarray]:
    """Invariant masses (GeV) of every opposite-L1-charge pair of muons in the same event, per source.

    All arrays are aligned: entry i of every source is the same pair of muons.
    """
    for source in sources:
        _check_columns(df, SOURCES[source], f"dimuon masses from {source} values")
    ordered, counts = by_event(df)
    charge = ak.unflatten(ordered["charge"].to_numpy(), counts)
    charge_pairs = ak.combinations(charge, 2, fields=["first", "second"])
    opposite = charge_pairs.first * charge_pairs.second < 0
    out = {}
    for source in sources:
        pt, eta, phi = (ordered[c].to_numpy(dtype=np.float64) for c in SOURCES[source])
        muons = vector.zip({"pt": pt, "eta": eta, "phi": phi, "mass": np.full(len(pt), MUON_MASS)})
        pairs = ak.combinations(ak.unflatten(muons, counts), 2, fields=["first", "second"])
        dimuon = pairs.first + pairs.second
        out[source] = ak.to_numpy(ak.flatten(dimuon.mass[opposite]))
    return out
