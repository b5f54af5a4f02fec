"""l1refit.config.loading: schema defaults, overlays, one-line errors."""

import json
import re
from pathlib import Path

import pytest
import yaml

from l1refit.config.loading import compose, defaults, load, read_yaml, validate
from l1refit.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_schema_defaults_fill_every_section():
    config = load()
    assert config["generator"]["bmtf"]["sigma_2"] == 0.1604  # the calibrated default lives in the schema only
    assert config["calibration"] == {"muons": 2000000, "seed": 7, "bayes_muons": 4000000, "bayes_seed": 8}
    assert defaults("selection")["l1_pt"] == [2.5, 45.0]


def test_overlay_merges_sections_and_replaces_datasets_and_models():
    base = {"datasets": {"a": 1, "b": 2}, "models": {"A": {}}, "training": {"epochs": 40, "folds": 5}}
    out = compose(base, {"datasets": {"c": 3}, "training": {"epochs": 2}})
    assert out == {"datasets": {"c": 3}, "models": {"A": {}}, "training": {"epochs": 2, "folds": 5}}
    assert base["training"]["epochs"] == 40  # inputs are not modified


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml")))
def test_every_shipped_config_is_an_overlay_that_validates(path):
    config = load([path])
    assert config["datasets"] and config["generator"]["eta"]["coarse_grid"] == [0, 33, 47, 63, 74]


def test_paper_scale_changes_only_the_datasets():
    default, paper = load(), load([REPO / "config/paper-scale.yaml"])
    assert paper["datasets"]["zerobias"]["files"] == 100
    assert {k: v for k, v in paper.items() if k != "datasets"} == {k: v for k, v in default.items() if k != "datasets"}


def test_an_error_is_one_line_with_key_and_value(tmp_path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump({"generator": {"bmtf": {"sigma_2": -0.1}}}))
    with pytest.raises(ConfigError) as err:
        load([overlay])
    message = str(err.value)
    assert "\n" not in message and "generator.bmtf.sigma_2 = -0.1" in message and "minimum" in message


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="'epoch' was unexpected"):
        datasets = {"z": {"source": "files", "format": "l1ntuple", "paths": ["x"]}}
        validate({"datasets": datasets, "training": {"epoch": 3}})


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"selection": {"l1_pt": [45, 2.5]}}, "selection.l1_pt = [45, 2.5]: need low < high"),
        ({"selection": {"tf_muon_index": [71, 36]}}, "selection.tf_muon_index = [71, 36]: need low <= high"),
        ({"plots": {"mass_range": [20, 0]}}, "plots.mass_range = [20, 0]: need low < high"),
        ({"plots": {"turn_on_pt_range": [40, 0]}}, "plots.turn_on_pt_range = [40, 0]: need low < high"),
        ({"plots": {"resonances": {"jpsi": [5.5, 2.0]}}}, "plots.resonances.jpsi = [5.5, 2.0]: need low < high"),
        ({"plots": {"mass_range": [0, 5]}}, "plots.resonances.jpsi = [2.0, 5.5]: the fit window must lie"),
    ],
)
def test_ranges_and_cross_key_constraints_are_checked(tmp_path, overlay, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(overlay))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load([path])


def test_a_single_index_range_is_allowed():
    assert load_overlay({"selection": {"tf_muon_index": [40, 40]}})["selection"]["tf_muon_index"] == [40, 40]


def load_overlay(overlay: dict) -> dict:
    return validate(compose(read_yaml(REPO / "config/config.yaml"), overlay))


def test_key_order_of_a_config_file_does_not_change_the_settings(tmp_path):
    """Re-saving a config with sorted keys (yaml.safe_dump) gives the same settings in the same order."""
    shuffled = tmp_path / "sorted.yaml"
    shuffled.write_text(yaml.safe_dump(read_yaml(REPO / "config/config.yaml"), sort_keys=True))
    ours, theirs = load(), load([shuffled])
    assert list(theirs["datasets"]) == ["muonia", "zerobias"]  # free-named entries keep the file's order
    for section in ("generator", "selection", "training", "models", "metrics", "plots", "benchmark", "io"):
        assert json.dumps(theirs[section]) == json.dumps(ours[section]), section
