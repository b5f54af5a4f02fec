"""The skim's cutflow: events, L1 and offline muons after each cut, the matched pairs, and two ratios.

Match efficiency: matched / selected offline muons, both in the BMTF acceptance |etaSt2| < 0.83 (it folds in the L1
efficiency and cuts). Fake-match rate: pairs found with every offline ``phiSt2`` turned by π, over the nominal
pairs: the turned muon has no L1 partner, so its matches are accidental coincidences at the same densities (a
slight overestimate where events hold back-to-back muons at equal η).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from l1refit.skim.selection import BMTF_ETA, Selection

SCOUTING_NOTE = "no offline muons in scouting data: L1 table only"
CUTFLOW = (  # (step, denominator): the fraction column is count / count[denominator]
    ("events", None),
    ("l1_all", None),
    ("l1_bx", "l1_all"),
    ("l1_barrel", "l1_bx"),
    ("l1_quality", "l1_barrel"),
    ("l1_pt", "l1_quality"),
    ("offline_all", None),
    ("offline_st2_valid", "offline_all"),
    ("offline_id", "offline_st2_valid"),
    ("offline_pt", "offline_id"),
    ("offline_barrel", "offline_pt"),
    ("matched_pairs", "l1_pt"),
    ("events_matched", "events"),
    ("match_efficiency", "offline_barrel"),
    ("fake_match_rate", "matched_pairs"),
)
_OFFLINE_STEPS = ("offline_all", "offline_st2_valid", "offline_id", "offline_pt", "offline_barrel")
_MATCH_STEPS = ("matched_pairs", "events_matched", "match_efficiency", "fake_match_rate")


def step_descriptions(
    sel: Selection, l1_only: bool, *, barrel_by_eta: bool = False, input_note: str = "", propagated: bool = False
) -> dict[str, str]:
    """The ``description`` column: what each step counts under ``sel`` (``l1_only``: a scouting skim).

    ``barrel_by_eta``: the file has no tfMuonIndex, the barrel is |η| < 0.83 at the station; ``input_note``: a cut
    the input file applied before us (the central NanoAOD table's); ``propagated``: the offline station-2
    coordinates come from :mod:`l1refit.skim.propagate`, not from the file.
    """
    lo, hi = sel.tf_muon_index
    at = "at station 2" if sel.match_at == "station2" else "at the vertex (L1 etaAtVtx/phiAtVtx vs offline eta/phi)"
    st2 = "propagated by l1refit (the file has none)" if propagated else "etaSt2/phiSt2 != -9999"
    out = {
        "events": "BX records read (scouting: each BX is an event)" if l1_only else "events read",
        "l1_all": "L1 muons" + (f" ({input_note})" if input_note else ""),
        "l1_bx": f"L1 muons in BX {sel.bx}" + (" (scouting: every muon is in its own BX)" if l1_only else ""),
        "l1_barrel": (
            f"... in the BMTF acceptance |eta| < {BMTF_ETA} at the muon station (the file has no tfMuonIndex)"
            if barrel_by_eta
            else f"... from the BMTF (tfMuonIndex {lo}-{hi})"
        ),
        "l1_quality": f"... with hwQual >= {sel.min_quality}",
        "l1_pt": f"... with {sel.l1_pt[0]} < pT < {sel.l1_pt[1]} GeV (the selected L1 muons)",
        "offline_all": "offline muons",
        "offline_st2_valid": (
            f"... with valid station-2 coordinates ({st2})"
            if sel.match_at == "station2"
            else "... (matching at the vertex: station-2 coordinates not required)"
        ),
        "offline_id": f"... passing the {sel.offline_id} ID" if sel.offline_id != "none" else "... (no ID required)",
        "offline_pt": f"... with pT >= {sel.offline_min_pt} GeV (the selected offline muons)",
        "offline_barrel": f"selected offline muons in the BMTF acceptance |etaSt2| < {BMTF_ETA}",
        "matched_pairs": f"one-to-one matched pairs with dR2 < {sel.match_dr2_cut} {at} (fraction: of selected L1)",
        "events_matched": "events with at least one matched pair",
        "match_efficiency": f"matched offline muons with |etaSt2| < {BMTF_ETA} (fraction: the match efficiency)",
        "fake_match_rate": f"pairs matched with the offline {'phi' if sel.match_at == 'vertex' else 'phiSt2'} turned "
        "by pi (fraction: the fake-match rate)",
    }
    if l1_only:
        out |= dict.fromkeys(_OFFLINE_STEPS + _MATCH_STEPS, SCOUTING_NOTE)
    return out


def _with_fractions(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill ``fraction`` = count / count[denominator]; empty where there is no denominator or it is 0."""
    count = dict(zip(frame["step"], frame["count"], strict=True))
    denominators = [count[d] if isinstance(d, str) else 0 for d in frame["denominator"]]
    fraction = [c / d if d else np.nan for c, d in zip(frame["count"], denominators, strict=True)]
    return frame.assign(fraction=fraction)


def cutflow_frame(counts: Mapping[str, int], descriptions: Mapping[str, str]) -> pd.DataFrame:
    """The cutflow table: ``step, count, denominator, fraction, description``, rows in :data:`CUTFLOW` order."""
    frame = pd.DataFrame(
        {
            "step": [step for step, _ in CUTFLOW],
            "count": np.array([counts[step] for step, _ in CUTFLOW], np.int64),
            "denominator": [den for _, den in CUTFLOW],
            "fraction": np.nan,
            "description": [descriptions[step] for step, _ in CUTFLOW],
        }
    )
    return _with_fractions(frame)


def read_cutflow(path: str | os.PathLike) -> pd.DataFrame:
    """Read a cutflow CSV written by :func:`~l1refit.skim.files.skim_file` or ``merge_skims``."""
    dtypes = {"step": str, "count": np.int64, "denominator": str, "fraction": np.float64, "description": str}
    return pd.read_csv(path, dtype=dtypes)


def sum_cutflows(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Add up the counts of cutflows with the same steps and recompute the fractions from the sums."""
    steps = list(frames[0]["step"])
    for frame in frames[1:]:
        if list(frame["step"]) != steps:
            raise ValueError(f"cutflows have different steps: {steps} vs {list(frame['step'])}")
    total = frames[0].copy()
    total["count"] = np.sum([frame["count"].to_numpy() for frame in frames], axis=0)
    return _with_fractions(total)
