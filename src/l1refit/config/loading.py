"""The workflow configuration outside Snakemake: the schema's defaults, scenario overlays, validation.

One source of truth: ``workflow/schemas/config.schema.yaml`` carries every key, its description and its default.
Code reads validated values (defaults filled in by :func:`validate`) rather than defaults of its own. Scenario
configs are overlays merged over ``config/config.yaml`` by :func:`compose` (see config/README.md).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from l1refit.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG_PATH = REPO / "config" / "config.yaml"
# Sections an overlay replaces whole when it sets them: a scenario's datasets and models are its own list, not
# additions to the default synthetic datasets and the paper's six models.
REPLACED_SECTIONS = ("datasets", "models")


@functools.cache
def load_schema() -> dict[str, Any]:
    """The config JSON schema (parsed once)."""
    if not SCHEMA_PATH.is_file():
        raise ConfigError(f"config schema {SCHEMA_PATH} not found: l1refit must be installed from its repository (-e)")
    return yaml.safe_load(SCHEMA_PATH.read_text())


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; anything else is a ConfigError naming the file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys, got {type(data).__name__}")
    return data


def _merge(base: dict, overlay: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def compose(base: Mapping, *overlays: Mapping) -> dict[str, Any]:
    """``base`` with each overlay merged over it key by key; ``datasets``/``models`` are replaced whole."""
    out = copy.deepcopy(dict(base))
    for overlay in overlays:
        merged = _merge(out, {k: v for k, v in overlay.items() if k not in REPLACED_SECTIONS})
        for key in REPLACED_SECTIONS:
            if key in overlay:
                merged[key] = copy.deepcopy(overlay[key])
        out = merged
    return out


def _with_defaults(validator_class):
    """A validator class that also writes each property's schema default into the instance (as Snakemake does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def describe(error: jsonschema.ValidationError) -> str:
    """One line: the key, the offending value and the rule it breaks (never the whole schema or config)."""
    where = _where(error)
    if error.validator in {"additionalProperties", "required"}:
        return f"{where}: {error.message}"
    shown = repr(error.instance)
    if len(shown) > 80:
        shown = f"{shown[:77]}..."
    return f"{where} = {shown}: {error.message}"


def _ranges(config: Mapping) -> Iterable[tuple[str, Any]]:
    """Every ``[low, high]`` setting of a (schema-valid) config, by its dotted key."""
    for key in ("tf_muon_index", "l1_pt"):
        yield f"selection.{key}", config["selection"][key]
    plots = config["plots"]
    for key in ("mass_range", "turn_on_pt_range"):
        yield f"plots.{key}", plots[key]
    for name, window in (plots.get("resonances") or {}).items():
        if window is not None:
            yield f"plots.resonances.{name}", window


def check_meaning(config: Mapping) -> None:
    """What the schema cannot say: every range has low < high (low <= high for index ranges), and a fit window
    lies inside Figure 3's mass range."""
    for key, (low, high) in _ranges(config):
        inclusive = key == "selection.tf_muon_index"  # an index range may hold one index
        if low > high or (low == high and not inclusive):
            raise ConfigError(f"{key} = [{low}, {high}]: need low {'<=' if inclusive else '<'} high")
    low, high = config["plots"]["mass_range"]
    for name, window in (config["plots"].get("resonances") or {}).items():
        if window is not None and not low <= window[0] < window[1] <= high:
            raise ConfigError(
                f"plots.resonances.{name} = {list(window)}: the fit window must lie inside plots.mass_range "
                f"= [{low}, {high}]"
            )


def _resolve_ref(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return root["$defs"][ref.removeprefix("#/$defs/")]
    return schema


def schema_order(value: Any, schema: dict, root: dict | None = None) -> Any:
    """``value`` with every mapping's keys in the schema's order (free-named keys such as dataset and model names
    keep the user's order): the same settings give the same params, whatever order a config file lists them in.
    """
    root = root or schema
    schema = _resolve_ref(schema, root)
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    ordered = {key: schema_order(value[key], properties[key], root) for key in properties if key in value}
    for key, item in value.items():
        if key not in properties:
            ordered[key] = schema_order(item, extra, root) if isinstance(extra, dict) else item
    return ordered


def validate(config: Mapping, source: str = "config") -> dict[str, Any]:
    """A validated copy of ``config`` with every schema default filled in; a ConfigError names the first bad key."""
    out = copy.deepcopy(dict(config))
    error = jsonschema.exceptions.best_match(_Validator(load_schema()).iter_errors(out))
    if error is not None:
        raise ConfigError(f"{source}: {describe(error)}")
    try:
        check_meaning(out)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return schema_order(out, load_schema())


def defaults(section: str) -> dict[str, Any]:
    """The schema's default of one top-level section (e.g. ``generator``, ``selection``, ``metrics``)."""
    schema = load_schema()
    subschema = {**schema["properties"][section], "$defs": schema.get("$defs", {})}
    if "default" not in subschema:
        raise ConfigError(f"config section {section!r} has no default in the schema")
    value = copy.deepcopy(subschema["default"])
    error = jsonschema.exceptions.best_match(_Validator(subschema).iter_errors(value))
    if error is not None:  # the schema's own default must satisfy it
        raise ConfigError(f"schema default of {section}: {describe(error)}")
    return value


def load(paths: Iterable[str | Path] = ()) -> dict[str, Any]:
    """``config/config.yaml`` with the overlays at ``paths`` merged over it, validated, defaults filled in."""
    paths = list(paths)
    overlays = [read_yaml(p) for p in paths]
    source = ", ".join(map(str, paths)) or str(DEFAULT_CONFIG_PATH)
    return validate(compose(read_yaml(DEFAULT_CONFIG_PATH), *overlays), source)


def reject_unknown(config: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """A ConfigError naming the first key of ``config`` not in ``known`` (``<where>.<key>: unknown key; ...``)."""
    known = set(known)
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; allowed: {', '.join(sorted(known))}")
