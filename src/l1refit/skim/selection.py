"""The skim's cuts: the ``selection:`` config as a dataclass, and the L1 and offline muon selections of a chunk.

Each selection applies its cuts as flat masks over the chunk's muons and counts the survivors after every cut
(the cutflow); :class:`Selection` documents the cuts and why their defaults are what they are.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from l1refit.config.loading import defaults, reject_unknown
from l1refit.errors import ConfigError
from l1refit.formats import l1ntuple

OFFLINE_IDS = {"tight": "isTightMuon", "medium": "isMediumMuon", "loose": "isLooseMuon", "none": None}
MATCH_AT = ("station2", "vertex")
NO_TF_INDEX = 255  # the tfMuonIndex column of muons read from a file without it (central NanoAOD)
BMTF_ETA = 0.83  # |η| edge of the BMTF region (docs/formats.md §5): the acceptance of the match-efficiency denominator


@dataclass(frozen=True)
class Selection:
    """The cuts of the ``selection:`` config key; each one is a key, the defaults follow the paper where it speaks.

    L1 muons (``L1Mu``): BX ``bx``, BMTF (``tfMuonIndex`` in ``tf_muon_index``, docs/formats.md §5), ``hwQual >=
    min_quality``, ``l1_pt[0] < pt < l1_pt[1]`` (exclusive, as the paper writes it: 2.5 < pT < 45 GeV). Offline
    muons (``Muon``): valid station-2 coordinates (CMSSW stores −9999 where the propagation failed), the
    ``offline_id`` flag, ``pt >= offline_min_pt``. Pairs: ΔR² < ``match_dr2`` at station 2 (the paper: 0.01).
    ``fake_offline_id`` is the ID of the offline muons that label an L1 muon real in the candidate table.

    ``min_quality`` defaults to 12, the uGT single-muon working point (``hwQual >= 12``; the L1T DQM's tightest
    class, docs/formats.md §6). The paper does not state a quality cut; 12 keeps the well-measured tracks (lower
    classes are double-muon-only candidates with poorer φ/pT) that a single-muon scouting analysis would use. Set
    0 to keep every quality.
    """

    bx: int
    tf_muon_index: tuple[int, int]
    min_quality: int
    l1_pt: tuple[float, float]
    match_dr2: float
    offline_id: str
    fake_offline_id: str
    offline_min_pt: float
    match_at: str
    vertex_match_dr2: float
    propagation: Mapping[str, float]

    def __post_init__(self) -> None:
        lo, hi = self.tf_muon_index
        if not 0 <= lo <= hi:
            raise ConfigError(f"selection.tf_muon_index: need 0 <= low <= high, got {list(self.tf_muon_index)}")
        if not 0 <= self.min_quality <= 15:
            raise ConfigError(f"selection.min_quality: hwQual is 4 bits (0..15), got {self.min_quality}")
        if not self.l1_pt[0] < self.l1_pt[1]:
            raise ConfigError(f"selection.l1_pt: need low < high, got {list(self.l1_pt)}")
        if not self.match_dr2 > 0:
            raise ConfigError(f"selection.match_dr2: must be positive, got {self.match_dr2}")
        if self.match_at not in MATCH_AT:
            raise ConfigError(f"selection.match_at: {self.match_at!r} is not one of {', '.join(MATCH_AT)}")
        if not self.vertex_match_dr2 > 0:
            raise ConfigError(f"selection.vertex_match_dr2: must be positive, got {self.vertex_match_dr2}")
        for key in ("offline_id", "fake_offline_id"):
            if getattr(self, key) not in OFFLINE_IDS:
                raise ConfigError(f"selection.{key}: {getattr(self, key)!r} is not one of {', '.join(OFFLINE_IDS)}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Selection:
        """Build from the ``selection:`` mapping; absent keys take the schema's defaults, unknown keys are an error."""
        config = dict(config or {})
        reject_unknown(config, (f.name for f in dataclasses.fields(cls)), "selection")
        config = {**defaults("selection"), **config}
        for key in ("tf_muon_index", "l1_pt"):
            if key in config:
                config[key] = tuple(config[key])
        config["propagation"] = {**defaults("selection")["propagation"], **config.get("propagation", {})}
        return cls(**config)

    @property
    def match_dr2_cut(self) -> float:
        """The ΔR² cut of the configured matching place."""
        return self.match_dr2 if self.match_at == "station2" else self.vertex_match_dr2


class Columns:
    """A per-event collection flattened once, its fields as flat NumPy arrays (no copy for what the readers build)."""

    def __init__(self, collection: ak.Array):
        self.num = ak.to_numpy(ak.num(collection, axis=1))
        self.flat = ak.flatten(collection, axis=1)
        self._numpy: dict[str, np.ndarray] = {}

    def __getitem__(self, field: str) -> np.ndarray:
        if field not in self._numpy:
            self._numpy[field] = ak.to_numpy(self.flat[field])
        return self._numpy[field]

    @functools.cached_property
    def starts(self) -> np.ndarray:
        """Flat position of each event's first muon."""
        return np.cumsum(self.num) - self.num


@dataclass(frozen=True)
class Selected:
    """The muons of a collection that passed a selection, and how many were left after each step.

    ``position`` is each selected muon's flat position in the chunk's collection (``source``), ``num`` the count
    per event; ``muons`` and ``index`` (position in the event's original list) are the per-event views.
    """

    source: Columns
    position: np.ndarray
    num: np.ndarray
    counts: dict[str, int]

    @property
    def muons(self) -> ak.Array:
        """The selected muons, per event (the collection's records)."""
        return ak.unflatten(self.source.flat[self.position], self.num)

    @property
    def index(self) -> ak.Array:
        """Per event: each selected muon's index in the event's original list."""
        event = np.repeat(np.arange(self.num.size), self.num)
        return ak.unflatten(self.position - self.source.starts[event], self.num)


def _apply(source: Columns, first: str, steps: Mapping[str, np.ndarray | None]) -> Selected:
    """Apply flat masks cumulatively (None: the step keeps everything), counting the survivors after each step."""
    offsets = np.concatenate([[0], np.cumsum(source.num)])
    counts = {first: int(offsets[-1])}
    mask = np.ones(offsets[-1], bool)
    for name, step in steps.items():
        if step is not None:
            mask &= step
        counts[name] = int(np.count_nonzero(mask))
    passed = np.concatenate([[0], np.cumsum(mask)])
    return Selected(source, np.flatnonzero(mask), passed[offsets[1:]] - passed[offsets[:-1]], counts)


def barrel_by_eta(events: ak.Array) -> bool:
    """True where the L1 muons have no ``tfMuonIndex`` (central NanoAOD): the barrel is |η at the station| < 0.83."""
    return "tfMuonIndex" not in ak.fields(events["L1Mu"])


def l1_steps(field: Callable[[str], np.ndarray], sel: Selection, by_eta: bool) -> dict[str, np.ndarray]:
    """The L1 cuts as flat masks, in cutflow order; ``field`` gives an L1 field (``bx``, ``tfMuonIndex`` or, with
    ``by_eta``, ``etaSt2``, ``hwQual``, ``pt``) as a flat array. Shared by the skim and the refit's fake-ID."""
    lo, hi = sel.tf_muon_index
    pt_lo, pt_hi = sel.l1_pt
    pt = field("pt")
    if by_eta:
        barrel = np.abs(field("etaSt2")) < BMTF_ETA
    else:
        barrel = (field("tfMuonIndex") >= lo) & (field("tfMuonIndex") <= hi)
    return {
        "l1_bx": field("bx") == sel.bx,
        "l1_barrel": barrel,
        "l1_quality": field("hwQual") >= sel.min_quality,
        "l1_pt": (pt > pt_lo) & (pt < pt_hi),
    }


def select_l1(events: ak.Array, sel: Selection) -> Selected:
    """The L1 muons of BX ``sel.bx`` from the BMTF with ``hwQual >= min_quality`` and ``low < pt < high``."""
    l1 = Columns(events["L1Mu"])
    return _apply(l1, "l1_all", l1_steps(l1.__getitem__, sel, barrel_by_eta(events)))


def select_offline(events: ak.Array, sel: Selection) -> Selected:
    """Offline muons with valid station-2 coordinates, the configured ID and ``pt >= offline_min_pt``."""
    muon = Columns(events["Muon"])
    invalid = l1ntuple.STATION_INVALID
    id_field = OFFLINE_IDS[sel.offline_id]
    at_station2 = sel.match_at == "station2"
    steps = {
        "offline_st2_valid": (muon["etaSt2"] != invalid) & (muon["phiSt2"] != invalid) if at_station2 else None,
        "offline_id": None if id_field is None else muon[id_field],
        "offline_pt": muon["pt"] >= sel.offline_min_pt,
    }
    return _apply(muon, "offline_all", steps)


def select_all(collection: ak.Array) -> Selected:
    """A selection that keeps every muon."""
    source = Columns(collection)
    return Selected(source, np.arange(source.num.sum()), source.num, {})
