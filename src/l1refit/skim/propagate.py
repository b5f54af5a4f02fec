"""Offline muons propagated to the second muon station, for files that do not store ``etaSt2, phiSt2`` (NanoAOD).

The paper matches L1 and offline muons at MB2 (ΔR² < 0.01), where the L1 measures φ; NanoAOD keeps only the vertex
track. :func:`propagate_to_station2` steps every muon at once through the transverse plane of the synthetic
detector of docs/physics.md §1.1–§1.2: an exact helix in each radial shell (field and pT constant inside it), the
solenoid field falling across the coil, no field in air, the return field of yoke layer 1, and the mean loss of
transverse momentum of each absorber spread uniformly over the layer's thickness. η at MB2 follows from the
transverse path length (§1.5). Its accuracy against true station-2 positions is in docs/physics.md §1.7.

Default energy loss: calibrated, like every other number of the synthetic detector. Its bending K_eff(pT) (§1.4,
``k_loss`` 0.555 after the calibration to the paper's GMT row) rises faster at low pT than the minimum-ionisation
losses of §1.2 × 1.2 give; with the same range-out (MB2 reached from 3.45 GeV) it needs 1.57× the minimum loss in
the calorimeters and 0.91× beyond them. :data:`ENERGY_LOSS` holds those products (``loss_factor`` 1);
:data:`PHYSICAL` is the uncalibrated propagator (:data:`ENERGY_LOSS_MIN` × 1.2). docs/physics.md §1.7 measures both.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from l1refit.config.loading import reject_unknown
from l1refit.errors import ConfigError
from l1refit.formats.l1ntuple import STATION_INVALID
from l1refit.simulate.detector import R_MB2

C_LIGHT = 0.299792458  # GeV per (T·m): curvature κ = C_LIGHT·B/pT in 1/m
MAX_STEP = 0.25  # m: the longest radial step where the curvature changes inside a shell (field gradient, loss)
CHUNK = 1 << 15  # muons per pass through the shells: keeps the working arrays in cache
_MIN_PT = 0.05  # GeV: the curvature of a muon that has already ranged out uses this pT (its result is discarded)

# minimum-ionisation loss of transverse momentum per layer at η = 0 [GeV] over [r_in, r_out] m: docs/physics.md §1.2
ENERGY_LOSS_MIN = ((1.29, 1.52, 0.235), (1.81, 2.95, 1.05), (2.95, 3.80, 0.30), (4.0, 4.3, 0.05), (4.40, 4.70, 0.34))
# the default: ECAL and HCAL × 1.5685, coil, HO and yoke × 0.9059, fitted to the synthetic detector's K_eff(pT)
# and MB2 range-out (minimum RMS of the propagated − true φ at MB2 on ZeroBias muons; docs/physics.md §1.7)
ENERGY_LOSS = ((1.29, 1.52, 0.369), (1.81, 2.95, 1.647), (2.95, 3.80, 0.272), (4.0, 4.3, 0.045), (4.40, 4.70, 0.308))


@dataclass(frozen=True)
class Propagator:
    """The field and material between the vertex and MB2 (docs/physics.md §1.1–§1.2), in T, m and GeV.

    ``energy_loss`` lists (r_in, r_out, ΔpT) per layer, scaled by ``loss_factor`` (dE/dx above the minimum);
    ``min_pt`` is the transverse momentum a muon needs left at the station to be seen there.
    """

    solenoid_field: float = 3.8
    coil_inner: float = 2.95
    coil_outer: float = 3.30
    yoke_field: float = -1.8
    yoke_inner: float = 4.40
    yoke_outer: float = 4.70
    station_radius: float = R_MB2
    energy_loss: tuple[tuple[float, float, float], ...] = ENERGY_LOSS
    loss_factor: float = 1.0
    min_pt: float = 0.3

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # config values arrive as YAML numbers and lists: normalise, then check
            value = getattr(self, f.name)
            try:
                value = tuple(_layer(row) for row in value) if f.name == "energy_loss" else float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"selection.propagation.{f.name}: {value!r} is not {_RULES[f.name][0]}") from None
            object.__setattr__(self, f.name, value)
        checks = {
            "coil_inner": self.coil_inner > 0,
            "coil_outer": self.coil_inner < self.coil_outer,
            "yoke_inner": self.coil_outer <= self.yoke_inner,
            "yoke_outer": self.yoke_inner < self.yoke_outer,
            "station_radius": self.yoke_outer <= self.station_radius,
            "loss_factor": self.loss_factor >= 0,
            "min_pt": self.min_pt > 0,
            "energy_loss": all(0 <= lo < hi and loss >= 0 for lo, hi, loss in self.energy_loss),
        }
        for key, ok in checks.items():
            if not ok:
                value = getattr(self, key)
                raise ConfigError(f"selection.propagation.{key}: {value!r} breaks the rule {_RULES[key][1]}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Propagator:
        """Build from the ``selection.propagation`` mapping; absent keys take :data:`DEFAULTS`, unknown keys fail."""
        config = dict(config or {})
        reject_unknown(config, (f.name for f in dataclasses.fields(cls)), "selection.propagation")
        return cls(**config)


_NUMBER = "a number"
_RULES = {  # key: (what it must be, the rule it must follow)
    "solenoid_field": (_NUMBER, ""),
    "coil_inner": (_NUMBER, "coil_inner > 0"),
    "coil_outer": (_NUMBER, "coil_inner < coil_outer"),
    "yoke_field": (_NUMBER, ""),
    "yoke_inner": (_NUMBER, "coil_outer <= yoke_inner"),
    "yoke_outer": (_NUMBER, "yoke_inner < yoke_outer"),
    "station_radius": (_NUMBER, "yoke_outer <= station_radius"),
    "energy_loss": ("a list of [r_in, r_out, loss] rows", "0 <= r_in < r_out and loss >= 0 in every row"),
    "loss_factor": (_NUMBER, "loss_factor >= 0"),
    "min_pt": (_NUMBER, "min_pt > 0"),
}
DEFAULTS = {f.name: f.default for f in dataclasses.fields(Propagator)}
DEFAULTS["energy_loss"] = [list(row) for row in ENERGY_LOSS]


def _layer(row) -> tuple[float, float, float]:
    lo, hi, loss = (float(v) for v in row)  # a row of another length raises ValueError
    return lo, hi, loss


PHYSICAL = Propagator(energy_loss=ENERGY_LOSS_MIN, loss_factor=1.2)  # §1.2 as it stands, not calibrated


def field(prop: Propagator, r) -> np.ndarray:
    """B_z(r) in T (§1.1): solenoid, linear fall across the coil winding, air, return field of yoke layer 1."""
    r = np.asarray(r, dtype=np.float64)
    fall = np.clip((prop.coil_outer - r) / (prop.coil_outer - prop.coil_inner), 0.0, 1.0)
    yoke = (r >= prop.yoke_inner) & (r < prop.yoke_outer)
    return np.where(yoke, prop.yoke_field, prop.solenoid_field * fall)


@functools.lru_cache(maxsize=32)
def shells(prop: Propagator, max_step: float = MAX_STEP) -> np.ndarray:
    """Radial shells (r_in, r_out, B at mid-radius, loss of pT per metre of transverse path), vertex to station.

    Shell edges include every field and layer boundary, so field and loss density are smooth inside a shell; a
    shell where the curvature changes along the path (a field gradient, or a loss inside the field) is cut into
    steps of at most ``max_step``, the others are exact in one step.
    """
    r_st = prop.station_radius
    edges = {0.0, prop.coil_inner, prop.coil_outer, prop.yoke_inner, prop.yoke_outer, r_st}
    edges |= {r for lo, hi, _ in prop.energy_loss for r in (lo, hi)}
    edges = np.array(sorted(e for e in edges if e <= r_st))
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mid = 0.5 * (lo + hi)
        density = sum(loss / (b - a) for a, b, loss in prop.energy_loss if a <= mid < b) * prop.loss_factor
        gradient = prop.coil_inner < mid < prop.coil_outer
        varying = gradient or (density > 0 and field(prop, mid) != 0)
        n = max(1, math.ceil((hi - lo) / max_step - 1e-9)) if varying else 1
        for a, b in zip(np.linspace(lo, hi, n + 1)[:-1], np.linspace(lo, hi, n + 1)[1:], strict=True):
            rows.append((a, b, float(field(prop, 0.5 * (a + b))), density))
    out = np.array(rows, dtype=np.float64)
    out.flags.writeable = False
    return out


def transport(pt, charge, prop: Propagator = Propagator(), max_step: float = MAX_STEP):
    """(Δφ vertex → station, transverse path length s_T, pT left, reached) for muons from the beam line.

    Per shell the invariant r·sin α − κr²/2 of a circle (α: angle between track and radius) gives α at the
    shell's outer radius; |sin α| ≥ 1 on the way means the track curls back. The position angle advances by the
    difference of arg(κr − sin α, cos α) at the two radii, the path by the turn of the direction over κ.
    """
    pt = np.asarray(pt, dtype=np.float64)
    q = np.broadcast_to(np.asarray(charge, dtype=np.float64), pt.shape)
    out = [np.empty(pt.size) for _ in range(3)] + [np.empty(pt.size, bool)]
    table = shells(prop, max_step)
    for start in range(0, pt.size, CHUNK):
        part = slice(start, start + CHUNK)
        for dest, values in zip(out, _transport_chunk(pt[part], q[part], table, prop.min_pt), strict=True):
            dest[part] = values
    return tuple(out)


def _sin_out(sin_a, r_in, r_out, k):
    """sin α at r_out on a circle of curvature k through r_in with sin α there: r·sin α − k·r²/2 is constant."""
    return (r_in * sin_a + (0.5 * (r_out * r_out - r_in * r_in)) * k) * (1.0 / r_out)


def _curvature(bend, b, pt, sin_a, cos_a, r_in, r_out, density):
    """κ of a shell from the pT at its middle, predicted from the loss over the path of a first guess (so the
    step is second order where the curvature changes); a muon that has ranged out keeps a finite κ."""
    if not density:
        return bend * b / np.maximum(pt, _MIN_PT)
    k = bend * b / np.maximum(pt - (0.5 * density * (r_out - r_in)) / np.maximum(cos_a, 0.1), _MIN_PT)
    sin_b = np.clip(_sin_out(sin_a, r_in, r_out, k), -1.0, 1.0)
    path = 2.0 * (r_out - r_in) / (cos_a + np.sqrt(1.0 - sin_b * sin_b) + 1e-3)  # Δr over the mean cos α
    return bend * b / np.maximum(pt - 0.5 * density * path, _MIN_PT)


def _transport_chunk(pt, q, table, min_pt):
    n = pt.size
    pt = pt.copy()
    sin_a, cos_a, angle_a = np.zeros(n), np.ones(n), np.zeros(n)  # α: track direction minus position angle
    dphi, path, worst = np.zeros(n), np.zeros(n), np.zeros(n)
    bend = -C_LIGHT * q  # κ = bend·B/pT: q = +1 turns clockwise (to −φ) in B along +z
    for r_in, r_out, b, density in table:
        if b == 0:  # a straight line: r·sin α is constant
            sin_b = sin_a * (r_in / r_out)
            cos_b, angle_b = np.sqrt(1.0 - sin_b * sin_b), np.arcsin(sin_b)
            dphi += angle_a - angle_b
            step = r_out * cos_b - r_in * cos_a
        else:
            k = _curvature(bend, b, pt, sin_a, cos_a, r_in, r_out, density)
            sin_b = _sin_out(sin_a, r_in, r_out, k)
            worst = np.maximum(worst, np.abs(sin_b))  # sin α = A/r + κr/2: |sin α| peaks at a shell edge
            sin_b = np.clip(sin_b, -1.0, 1.0)
            cos_b, angle_b = np.sqrt(1.0 - sin_b * sin_b), np.arcsin(sin_b)
            x1, x2 = k * r_in - sin_a, k * r_out - sin_b  # arg(x, cos α): the position angle up to a constant
            step_phi = np.arctan2(x2 * cos_a - cos_b * x1, x1 * x2 + cos_a * cos_b)
            dphi += step_phi
            step = (step_phi + angle_b - angle_a) / k  # the direction turns by κ·s
        path += step
        if density:
            pt -= density * step
        sin_a, cos_a, angle_a = sin_b, cos_b, angle_b
    return dphi, path, pt, (worst < 1.0) & (pt >= min_pt)


def propagate_to_station2(pt, eta, phi, charge, z0=0.0, prop: Propagator = Propagator()):
    """(η, φ) of offline muons at the station radius as float32; −9999 where they range out or curl back.

    η is the position η seen from the nominal interaction point: asinh(sinh η · s_T/r + z0/r) (§1.5); φ is
    wrapped to (−π, π]. The muons come from the beam line (no transverse impact parameter).
    """
    pt, eta, phi = (np.asarray(a, dtype=np.float64) for a in (pt, eta, phi))
    dphi, path, _, reached = transport(pt, charge, prop)
    r = prop.station_radius
    eta_st = np.arcsinh(np.sinh(eta) * path / r + np.asarray(z0, dtype=np.float64) / r)
    phi_st = np.pi - np.mod(np.pi - (phi + dphi), 2 * np.pi)
    invalid = np.float32(STATION_INVALID)
    return tuple(np.where(reached, x, invalid).astype(np.float32) for x in (eta_st, phi_st))


def with_station2(events: ak.Array, prop: Propagator) -> ak.Array:
    """``events`` with the offline ``etaSt2, phiSt2`` replaced by propagated ones (vertex z from ``Muon.z0`` if
    present, else 0); −9999 where the propagation fails."""
    muon = events["Muon"]
    flat = ak.flatten(muon, axis=1)
    z0 = ak.to_numpy(flat["z0"]) if "z0" in flat.fields else 0.0
    columns = (ak.to_numpy(flat[f]) for f in ("pt", "eta", "phi", "charge"))
    eta, phi = propagate_to_station2(*columns, z0, prop)
    counts = ak.num(muon, axis=1)
    muon = ak.with_field(muon, ak.unflatten(eta, counts), "etaSt2")
    muon = ak.with_field(muon, ak.unflatten(phi, counts), "phiSt2")
    return ak.with_field(events, muon, "Muon")
