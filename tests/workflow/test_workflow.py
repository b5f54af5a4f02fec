"""The real Snakemake DAG: lint, dry runs of the shipped configs, a tiny file dataset, config errors."""

import json
import re

import pytest
import yaml

pytestmark = pytest.mark.workflow

NO_MODELS = {"models": {}}  # a scenario of datasets only: inventory, skims and cutflows, no training stage


def datasets_config(tmp_path, datasets, **sections):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"datasets": datasets, **NO_MODELS, **sections}))
    return path


def test_lint_is_clean(snakemake):
    proc = snakemake("--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_default_config_builds_a_dag(snakemake, repo, tmp_path):
    # the embedded default in a fresh directory: the whole DAG, every rule
    proc = snakemake("-n", "--directory", str(tmp_path), "all")
    text = proc.stdout + proc.stderr
    assert "This was a dry-run" in text
    rules = ("generate", "skim", "train", "predict", "table2", "fig2", "dimuon", "turn_on", "export_onnx", "table3",
             "train_fakeid", "fakeid", "export_fakeid")  # fmt: skip
    for rule in rules:
        assert re.search(rf"^{rule}\s+\d+$", text, re.M), rule


def test_paper_scale_config_builds_a_dag(snakemake, repo, tmp_path):
    proc = snakemake("-n", f"--configfile={repo / 'config/paper-scale.yaml'}", "--directory", str(tmp_path), "all")
    text = proc.stdout + proc.stderr
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", text, re.M)}
    assert counts["generate"] == 150 and counts["skim"] == 150 and counts["train"] == 36 and counts["total"] == 424


def test_htcondor_profile_builds_the_dag(snakemake, repo, tmp_path):
    """No HTCondor pool exists here: a dry run through the htcondor executor checks the profile and the plugin."""
    proc = snakemake("-n", "--profile", str(repo / "profiles/htcondor"), "--directory", str(tmp_path), "all")
    assert "This was a dry-run" in proc.stdout + proc.stderr


def test_tiny_file_dataset_runs_end_to_end(snakemake, cmssw_ntuple, tmp_path):
    config = datasets_config(tmp_path, {"fix": {"source": "files", "format": "l1ntuple", "paths": [str(cmssw_ntuple)]}})
    snakemake("--cores", "1", f"--configfile={config}", "--directory", str(tmp_path), "all")
    inventory = json.loads((tmp_path / "results/inspect/fix.json").read_text())
    assert inventory["totals"] == {"n_events": 1000, "n_l1_muons": 1225, "n_offline_muons": 1177}
    log = (tmp_path / "logs/inspect/fix.log").read_text()
    assert "inspecting" in log and "resources: wall" in log.splitlines()[-1]
    # nothing left to do on a second run
    proc = snakemake("-n", f"--configfile={config}", "--directory", str(tmp_path), "all")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_wrong_format_fails_the_job_and_leaves_no_output(snakemake, cmssw_ntuple, tmp_path):
    dataset = {"source": "files", "format": "scouting-run2", "paths": [str(cmssw_ntuple)]}
    config = datasets_config(tmp_path, {"fix": dataset})
    proc = snakemake("--cores", "1", f"--configfile={config}", "--directory", str(tmp_path), "all", check=False)
    assert proc.returncode != 0
    assert "is a l1ntuple file, but the format 'scouting-run2' was expected" in proc.stdout + proc.stderr
    assert not (tmp_path / "results/inspect/fix.json").exists()


def test_glob_matching_nothing_stops_before_any_job(snakemake, tmp_path):
    config = datasets_config(tmp_path, {"mine": {"source": "files", "format": "l1ntuple", "paths": ["data/*.root"]}})
    proc = snakemake("-n", f"--configfile={config}", "--directory", str(tmp_path), "all", check=False)
    assert proc.returncode != 0
    assert "dataset 'mine': glob 'data/*.root' matches no file" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        ({"zb": {"source": "synthetic", "population": "zerobias", "files": 1, "events_per_file": 10, "seed": 1,
                 "colour": "red"}}, "'colour' was unexpected"),
        ({"zb": {"source": "synthetic", "population": "ttbar", "files": 1, "events_per_file": 10, "seed": 1}},
         "'ttbar' is not one of ['zerobias', 'muonia']"),
        ({"zb": {"source": "files", "paths": ["x"]}}, "'format' is a required property"),
    ],
)  # fmt: skip
def test_schema_errors_name_the_key(snakemake, tmp_path, datasets, message):
    config = datasets_config(tmp_path, datasets)
    proc = snakemake("-n", f"--configfile={config}", "--directory", str(tmp_path), "all", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


SYNTH = {"source": "synthetic", "population": "zerobias", "files": 1, "events_per_file": 10, "seed": 1}
TINY_CALIBRATION = {"muons": 20000, "seed": 1, "bayes_muons": 20000, "bayes_seed": 2}


def test_tiny_synthetic_datasets_generate_and_calibrate(snakemake, tmp_path):
    datasets = {
        "zb": {**SYNTH, "files": 2, "events_per_file": 500},
        "mo": {**SYNTH, "population": "muonia", "events_per_file": 300, "seed": 5},
    }
    config = datasets_config(tmp_path, datasets, calibration=TINY_CALIBRATION)
    snakemake("--cores", "2", f"--configfile={config}", "--directory", str(tmp_path), "all")
    for part in ("zb/0", "zb/1", "mo/0"):
        path = tmp_path / f"results/ntuples/{part}.root"
        assert path.stat().st_size > 10_000
        log = (tmp_path / f"logs/generate/{part}.log").read_text()
        assert ("500/500 events" if part.startswith("zb") else "300/300 events") in log
        assert "resources: wall" in log.splitlines()[-1]  # the resource record of a cached (unbenchmarked) rule
    table = (tmp_path / "results/tables/generator_calibration.csv").read_text().splitlines()
    assert table[0].startswith("row,phi_rms,eta_rms,pt_rms") and len(table) == 7


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        ({"bmtf": {"sigma_2": -0.1}}, "-0.1 is less than the minimum of 0.01"),
        ({"bmtf": {"flip_prob": 1.5}}, "1.5 is greater than the maximum of 0.5"),
        ({"eta": {"fine_fraction": -0.2}}, "-0.2 is less than the minimum of 0"),
        ({"bmtf": {"sigma_9": 0.1}}, "'sigma_9' was unexpected"),
    ],
)
def test_invalid_generator_parameters_are_schema_errors(snakemake, tmp_path, generator, message):
    config = datasets_config(tmp_path, {"zb": SYNTH}, generator=generator)
    proc = snakemake("-n", f"--configfile={config}", "--directory", str(tmp_path), "all", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert message in out
    key = next(iter(next(iter(generator.values()))))
    assert key in out  # the offending key is named


def test_unknown_top_level_key_is_an_error(snakemake, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("datasets: {zb: {source: files, format: l1ntuple, paths: [x]}}\ntraining_epochs: 3\n")
    proc = snakemake("-n", f"--configfile={config}", "--directory", str(tmp_path), "all", check=False)
    assert proc.returncode != 0 and "'training_epochs' was unexpected" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"selection": {"l1_pt": [45, 2.5]}}, "selection.l1_pt = [45, 2.5]: need low < high"),
        ({"plots": {"mass_range": [20, 0]}}, "plots.mass_range = [20, 0]: need low < high"),
        ({"plots": {"turn_on_pt_range": [40, 0]}}, "plots.turn_on_pt_range = [40, 0]: need low < high"),
        ({"selection": {"tf_muon_index": [71, 36]}}, "selection.tf_muon_index = [71, 36]: need low <= high"),
    ],
)
def test_bad_range_stops_before_any_job_and_keeps_earlier_outputs(snakemake, tmp_path, overlay, message):
    previous = tmp_path / "results/plots/turn_on.png"  # a valid output of an earlier run
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"a figure")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(overlay))
    proc = snakemake("--cores", "1", f"--configfile={config}", "--directory", str(tmp_path), "all", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"configuration error: {config}: {message}" in out
    assert "Select jobs to execute" not in out and "rule " not in out.split("configuration error")[0]
    assert previous.read_bytes() == b"a figure"
    assert len(out.splitlines()) < 15  # the key and the value, not the schema and the config
