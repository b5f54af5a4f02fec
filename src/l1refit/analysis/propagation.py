"""How well :mod:`l1refit.skim.propagate` stands in for true station-2 positions: the propagation-accuracy table.

NanoAOD has no station-2 coordinates of offline muons, so the skim propagates them. On synthetic events, whose
L1Ntuple layout holds the true ``etaSt2, phiSt2``, this module compares propagated with true positions per offline
pT bin and runs the skim's own matching (:func:`l1refit.skim.chunk.skim_chunk`) twice, with the true and with the
propagated positions. Results are in docs/physics.md §1.7.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd

from l1refit import scales
from l1refit.formats import l1ntuple
from l1refit.formats.output import write_csv
from l1refit.skim.chunk import skim_chunk
from l1refit.skim.propagate import Propagator, with_station2
from l1refit.skim.selection import BMTF_ETA, Selection, select_offline

PT_BINS = (3.0, 5.0, 7.0, 10.0, 15.0, 25.0, 45.0, np.inf)  # offline pT [GeV]; the first bin starts below range-out
COLUMNS = (
    "pt_bin", "pt_low", "pt_high", "n", "failed", "qdphi_mean", "dphi_rms", "dphi_p99", "deta_mean", "deta_rms",
    "deta_p99", "n_barrel", "efficiency_true", "efficiency_propagated", "fake_rate_true", "fake_rate_propagated",
)  # fmt: skip


def _matched(rows: dict[str, np.ndarray], starts: np.ndarray, n_muons: int) -> np.ndarray:
    """Per flat offline muon of the chunk: whether the skim matched it (rows carry entry and reco_index)."""
    out = np.zeros(n_muons, bool)
    out[starts[rows["entry"].astype(np.int64)] + rows["reco_index"]] = True
    return out


def _block(events: ak.Array, sel: Selection, prop: Propagator) -> dict:
    """Per selected offline muon: pT, Δφ, Δη, propagation failed, in the barrel, matched (true / propagated)."""
    moved = with_station2(events, prop)
    offline = select_offline(events, sel)  # valid true coordinates, ID and pT: the muons compared
    at = offline.position
    true_eta, true_phi = offline.source["etaSt2"][at], offline.source["phiSt2"][at]
    flat = ak.flatten(moved["Muon"], axis=1)
    prop_eta, prop_phi = ak.to_numpy(flat["etaSt2"])[at], ak.to_numpy(flat["phiSt2"])[at]
    rows_true, counts_true = skim_chunk(events, sel)
    rows_prop, counts_prop = skim_chunk(moved, sel)
    n_muons = offline.source.num.sum()
    return {
        "pt": offline.source["pt"][at].astype(np.float64),
        "charge": offline.source["charge"][at].astype(np.float64),
        "failed": prop_eta == l1ntuple.STATION_INVALID,
        "dphi": scales.delta_phi(prop_phi, true_phi),
        "deta": prop_eta.astype(np.float64) - true_eta,
        "barrel": np.abs(true_eta) < BMTF_ETA,
        "matched_true": _matched(rows_true, offline.source.starts, n_muons)[at],
        "matched_prop": _matched(rows_prop, offline.source.starts, n_muons)[at],
        "counts": {f"{k}_{tag}": c[k] for tag, c in (("true", counts_true), ("prop", counts_prop))
                   for k in ("fake_match_rate", "matched_pairs")},
    }  # fmt: skip


def _row(label: str, lo: float, hi: float, v: dict[str, np.ndarray]) -> dict:
    ok = ~v["failed"]
    dphi, deta, barrel = v["dphi"][ok], v["deta"][ok], v["barrel"]
    qdphi = v["charge"][ok] * dphi
    n_barrel = int(np.count_nonzero(barrel))

    def stats(x, signed):
        if not x.size:
            return np.nan, np.nan, np.nan
        return float(signed.mean()), float(np.sqrt(np.mean(x * x))), float(np.percentile(np.abs(x), 99))

    def share(mask):
        return np.count_nonzero(mask & barrel) / n_barrel if n_barrel else np.nan

    return dict(zip(COLUMNS, (
        label, lo, hi, int(ok.size), int(np.count_nonzero(~ok)), *stats(dphi, qdphi), *stats(deta, deta), n_barrel,
        share(v["matched_true"]), share(v["matched_prop"]), np.nan, np.nan,
    ), strict=True))  # fmt: skip


def propagation_accuracy(
    events: ak.Array | Iterable[ak.Array], selection: Selection, prop: Propagator | None = None
) -> pd.DataFrame:
    """The table of :data:`COLUMNS`: one row per offline-pT bin of :data:`PT_BINS` and a last row ``all``.

    ``events`` (one chunk or an iterable of chunks) have the L1Ntuple reader's layout with the true offline
    ``etaSt2, phiSt2``. The compared muons are the selected offline muons (valid true coordinates, ID, pT): ``n``
    of them, ``failed`` without a propagated position; Δ = propagated − true over the others, Δφ wrapped, p99 of
    |Δ|. Efficiencies: matched / ``n_barrel`` (|true etaSt2| < 0.83, the same denominator for both matchings).
    Fake rates (the skim's φ + π control over its matched pairs) are on the ``all`` row only. The matching is at
    station 2 whatever ``selection.match_at`` says: that is the matching the propagation serves.
    """
    chunks = [events] if isinstance(events, ak.Array) else events
    sel = dataclasses.replace(selection, match_at="station2")
    blocks = [_block(chunk, sel, prop or Propagator()) for chunk in chunks]
    values = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0] if k != "counts"}
    counts = {k: sum(b["counts"][k] for b in blocks) for k in blocks[0]["counts"]}
    rows = []
    for lo, hi in zip(PT_BINS[:-1], PT_BINS[1:], strict=True):
        inside = (values["pt"] >= lo) & (values["pt"] < hi)
        rows.append(_row(f"{lo:g}-{hi:g}", lo, hi, {k: v[inside] for k, v in values.items()}))
    total = _row("all", PT_BINS[0], PT_BINS[-1], values)
    for tag, name in (("true", "true"), ("prop", "propagated")):
        pairs = counts[f"matched_pairs_{tag}"]
        total[f"fake_rate_{name}"] = counts[f"fake_match_rate_{tag}"] / pairs if pairs else np.nan
    return pd.DataFrame([*rows, total], columns=list(COLUMNS))


def synthetic_events(n_events: int, seed: int, gen: Mapping, luts=None) -> Iterator[ak.Array]:
    """ZeroBias-like synthetic events as the skim reads them (written to an L1Ntuple-layout file and read back),
    in blocks seeded by :func:`l1refit.simulate.events.block_rng` (seed, part 0, block); ``Muon.z0`` is attached."""
    from l1refit.simulate.events import BLOCK, block_rng, zerobias_block
    from l1refit.simulate.ugmt import build_luts

    luts = luts or build_luts(dict(gen))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "block.root"
        for block, start in enumerate(range(0, n_events, BLOCK)):
            made = zerobias_block(block_rng(seed, 0, block), min(BLOCK, n_events - start), dict(gen), luts, start)
            l1ntuple.write(path, made)
            events = l1ntuple.read(path)
            if "z0" in made["Muon"].fields:
                events = ak.with_field(events, ak.with_field(events["Muon"], made["Muon"]["z0"], "z0"), "Muon")
            yield events


def write_propagation_table(
    csv_path: str | os.PathLike, n_events: int, seed: int, gen: Mapping, selection: Selection,
    prop: Propagator | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Generate ``n_events`` synthetic events, measure :func:`propagation_accuracy`, write it as CSV (atomically)."""
    table = propagation_accuracy(synthetic_events(n_events, seed, gen), selection, prop)
    write_csv(table, csv_path)
    return table
