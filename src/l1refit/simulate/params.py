"""Every physics parameter of the synthetic detector, with its default, bounds and one-line description.

This table is the single source of the ``generator:`` config section: the JSON schema block in
``workflow/schemas/config.schema.yaml`` is checked against it by a test, so the two cannot drift apart.
Section numbers (§) refer to the physics model shipped with the project (PHYSICS_MODEL.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None


P = Param
SPEC: dict[str, dict[str, Param]] = {
    "population": {
        "soft_fraction": P(0.6932, "ZeroBias mixture: fraction of soft muons (light-meson decays; §4)", 0, 1),
        "soft_alpha": P(5.915, "power-law index of the soft component, dN/dpT ~ pT^-alpha", 1.5, 10),
        "soft_pt_min": P(3.3, "lower pT edge of the soft component in GeV (range-out threshold; §4)", 1, 10),
        "mid_fraction": P(0.1012, "fraction of the intermediate-pT component", 0, 1),
        "mid_alpha": P(2.8, "power-law index of the intermediate component", 1.5, 10),
        "mid_pt_min": P(5.0, "lower pT edge of the intermediate component in GeV", 1, 30),
        "hard_alpha": P(3.5, "power-law index of the hard component (MuX_TkMu0-like legs; the rest)", 1.5, 10),
        "hard_pt_min": P(21.74, "lower pT edge of the hard component in GeV", 5, 60),
        "pt_max": P(200.0, "upper pT edge of every component in GeV", 50, 1000),
        "eta_max": P(0.95, "generated |eta| range (covers the BMTF |eta|<0.83 and the inner OMTF)", 0.1, 2.4),
        "charge_ratio": P(1.07, "N(mu+)/N(mu-) (§4)", 0.5, 2),
        "second_muon_prob": P(0.05, "probability of a second, independent muon in a ZeroBias event", 0, 1),
    },
    "decay_in_flight": {
        "fraction_low": P(0.08, "fraction of decays in flight at pT < 6 GeV (offline track = parent hadron; §4)", 0, 1),
        "fraction_high": P(0.03, "fraction of decays in flight at pT > 15 GeV (linear in between)", 0, 1),
        "z_min": P(0.7, "the muon carries z ~ U(z_min, 1) of the parent pT", 0, 1),
        "kink": P(0.015, "sigma of the decay kink in phi, rad", 0, 0.2),
    },
    "propagation": {
        "k_scale": P(1.0, "scale on the bending K_eff(pT) = 2.45 + 0.32 f (5/pT)^1.8 rad GeV at MB2 (§1.4)", 0.8, 1.2),
        "k_inf": P(2.45, "asymptotic pT x |dphi(vertex -> MB2)| in rad GeV (§1.4)", 2.0, 3.0),
        "k_loss": P(0.555, "energy-loss term of K_eff at 5 GeV, rad GeV (§1.4)", 0, 1),
        "eloss_sigma": P(0.10, "Gaussian spread of the energy-loss factor f (§1.2)", 0, 0.5),
        "eloss_tail": P(0.05, "mean of the exponential (Landau-like) high tail of f (§1.2)", 0, 0.5),
        "mb2_pt": P(3.446, "pT in GeV needed to reach MB2 at f = 1 (range-out; §1.2)", 2, 6),
        "mb3_pt": P(4.5, "pT in GeV needed to reach MB3 at f = 1", 2, 8),
        "mb4_pt": P(5.5, "pT in GeV needed to reach MB4 at f = 1", 2, 10),
        "ms_coeff": P(0.088, "multiple scattering at MB2: sigma_phi = coeff / (pT sqrt(cosh eta)) rad (§1.3)", 0, 0.3),
        "z0_sigma": P(0.035, "luminous-region spread in z, m (irreducible eta smearing at the station; §1.5)", 0, 0.2),
    },
    "bmtf": {
        "sigma_2": P(0.1604, "relative 1/pT resolution of 2-station tracks (§2.3)", 0.01, 1),
        "sigma_3": P(0.1192, "relative 1/pT resolution of 3-station tracks", 0.01, 1),
        "sigma_4": P(0.08, "relative 1/pT resolution of 4-station tracks", 0.01, 1),
        "tail_fraction": P(0.01, "fraction of the wide component of the 1/pT response", 0, 1),
        "tail_sigma": P(0.40, "relative 1/pT resolution of the wide component", 0.01, 2),
        "flip_prob": P(0.001, "extra charge-flip probability on top of the natural flips of the response", 0, 0.5),
        "threshold_quantile": P(0.05294, "the 90 % rule: P(pT_L1 >= X | pT = X) = 1 - quantile (§2.3)", 0.01, 0.5),
        "hw_pt_min": P(7, "smallest hwPt the pT LUT gives (7 = 3.0 GeV; §2.3)", 1, 50),
        "hw_pt_max": P(281, "largest hwPt the pT LUT gives (281 = 140 GeV)", 100, 511),
        "fake_fraction": P(0.002, "fraction of L1 muons with an uncorrelated pT (ghosts, punch-through; §4)", 0, 0.5),
        "inefficiency": P(0.02, "random BMTF inefficiency (sector cracks, dead chambers)", 0, 1),
        "sector_phase": P(0.001, "amplitude in rad of the phi bias periodic in the 30-degree sector (§2.2)", 0, 0.01),
    },
    "eta": {
        "fine_fraction": P(0.6, "fraction of muons with a fine (theta-segment) eta (§2.4)", 0, 1),
        "fine_sigma": P(0.01533, "resolution of the fine eta", 0, 0.2),
        "coarse_grid": P([0, 33, 47, 63, 74], "coarse-eta values in hwEta units (real 2018 data; §2.4)", None, None),
    },
    "offline": {
        "pt_resolution_scale": P(1.0, "scale on the tracker pT resolution table of §3 (0.85-1.4 %)", 0, 5),
        "angle_resolution_scale": P(1.0, "scale on the tracker phi/eta resolutions of §3", 0, 5),
        "tight_inefficiency": P(0.01, "probability that a muon reaching MB2 fails the tight ID", 0, 1),
        "propagation_failure": P(0.005, "probability that the propagation to station 2 fails (-9999)", 0, 1),
    },
    "extras": {
        "bx_neighbour_prob": P(0.03, "probability that an L1 muon also appears at BX -1 or +1", 0, 1),
        "unmatched_rate": P(0.05, "mean number of unmatched (fake) L1 candidates per event", 0, 5),
    },
    "ugmt": {
        "lut_samples": P(400000, "flat-1/pT muons used to build the uGMT extrapolation LUTs (§1.6)", 10000, 100000000),
        "lut_seed": P(20170101, "seed of the LUT-building sample (the LUTs belong to the detector)", 0, None),
    },
    "muonia": {
        "fractions": P(
            {"upsilon1s": 0.30, "upsilon2s": 0.09, "upsilon3s": 0.05, "jpsi": 0.20, "psi2s": 0.015, "phi": 0.08,
             "continuum": 0.265},
            "event mix after the HLT-like selection, by state (§5)", None, None,
        ),
        "muon_pt_min": P(3.5, "offline pT cut on both muons in GeV (range-out; §5)", 0, 20),
        "eta_max": P(0.83, "|eta| acceptance of both muons (barrel L1)", 0.1, 2.4),
        "dimuon_pt_min": P(
            {"phi": 14.0, "jpsi": 20.0, "psi2s": 20.0, "upsilon1s": 10.0, "upsilon2s": 10.0, "upsilon3s": 10.0,
             "continuum": 10.0},
            "barrel-dimuon trigger: pT(mumu) threshold in GeV by state (§5)", None, None,
        ),
        "leading_pt_min": P(25.0, "MuX_TkMu0 trigger: leading-muon pT threshold in GeV (§5)", 5, 100),
        "rapidity_max": P(1.2, "barrel-dimuon trigger: |y(mumu)| cut", 0.1, 2.5),
    },
}  # fmt: skip


def defaults() -> dict[str, dict[str, Any]]:
    """The default ``generator:`` config section."""
    return {group: {key: p.default for key, p in params.items()} for group, params in SPEC.items()}


def resolve(config: dict | None) -> dict[str, dict[str, Any]]:
    """Defaults overlaid with a (schema-validated) ``generator:`` section; unknown keys are an error."""
    out = defaults()
    for group, values in (config or {}).items():
        if group not in SPEC:
            raise KeyError(f"generator.{group}: unknown group; allowed: {', '.join(SPEC)}")
        for key, value in values.items():
            if key not in SPEC[group]:
                raise KeyError(f"generator.{group}.{key}: unknown parameter; allowed: {', '.join(SPEC[group])}")
            out[group][key] = value
    return out


def schema() -> dict[str, Any]:
    """The JSON-schema block of the ``generator:`` key (what the YAML schema must contain)."""
    groups = {}
    for group, params in SPEC.items():
        props = {}
        for key, p in params.items():
            entry: dict[str, Any] = {"description": p.description, "default": p.default}
            if isinstance(p.default, bool):
                entry["type"] = "boolean"
            elif isinstance(p.default, int):
                entry["type"] = "integer"
            elif isinstance(p.default, float):
                entry["type"] = "number"
            elif isinstance(p.default, list):
                entry["type"] = "array"
                entry["items"] = {"type": "integer", "minimum": 0, "maximum": 255}
                entry["minItems"] = 1
            elif isinstance(p.default, dict):
                entry["type"] = "object"
                entry["additionalProperties"] = False
                entry["properties"] = {k: {"type": "number", "minimum": 0} for k in p.default}
            if p.minimum is not None:
                entry["minimum"] = p.minimum
            if p.maximum is not None:
                entry["maximum"] = p.maximum
            props[key] = entry
        groups[group] = {
            "description": f"generator parameters: {group.replace('_', ' ')}",
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": props,
        }
    return {
        "description": "Physics parameters of the synthetic CMS-like detector (calibrated defaults).",
        "type": "object",
        "additionalProperties": False,
        "default": {},
        "properties": groups,
    }
