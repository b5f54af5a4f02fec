"""The whole workflow on Run-3 inputs: a synthetic central NanoAOD trains the model (hardware integers recovered from
12-bit floats, barrel by η, offline muons propagated to MB2) and the apply stage re-fits a CMSSW L1 scouting EDM
file; the propagation-accuracy table is made because a dataset is NanoAOD."""

import shutil

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def run3(tmp_path_factory, small, repo, snakemake, write_config):
    workdir = tmp_path_factory.mktemp("run3")
    edm = repo / "tests/data/l1scouting/testL1Scouting_v3_v3_v3_v3_v3_v3_14_1_0_pre5_split_99.root"
    shutil.copy(edm, workdir / "scout.root")
    config = {
        **small,
        "datasets": {
            "zerobias": {**small["datasets"]["zerobias"], "format": "nanoaod"},
            "scout": {"source": "files", "format": "l1scouting-edm", "paths": ["scout.root"]},
        },
        # the EDM fixture's few muons have arbitrary values: keep them all (the NanoAOD barrel is by η anyway)
        "selection": {"tf_muon_index": [0, 107], "min_quality": 0, "l1_pt": [0.0, 255.5]},
        "propagation_check": {"events": 5000},
    }
    path = write_config(workdir / "run3.yaml", config)
    # `all` asks for the propagation table and the apply stage (a dry run says so); the real run builds only what
    # these tests read, to keep the suite short
    proc = snakemake("-n", f"--configfile={path}", "--directory", str(workdir), "all")
    dry = proc.stdout + proc.stderr
    assert "propagation_accuracy" in dry and "results/predictions/A/final/scout.parquet" in dry
    targets = ["results/tables/table2.csv", "results/tables/propagation_accuracy.csv", "results/inspect/scout.json",
               "results/predictions/A/final/scout.parquet"]  # fmt: skip
    snakemake("--cores", "2", f"--configfile={path}", "--directory", str(workdir), *targets)
    return workdir


def test_nanoaod_training_dataset(run3):
    cutflow = pd.read_csv(run3 / "results/tables/cutflow_zerobias.csv").set_index("step")
    assert "the file has no tfMuonIndex" in cutflow.loc["l1_barrel", "description"]
    assert "pt >= 3 GeV && hwQual >= 8" in cutflow.loc["l1_all", "description"]
    assert "propagated by l1refit" in cutflow.loc["offline_st2_valid", "description"]
    assert 0.7 < cutflow.loc["match_efficiency", "fraction"] < 0.9
    table2 = pd.read_csv(run3 / "results/tables/table2.csv").set_index("model")
    assert {"GMT", "A"} <= set(table2.index)
    # the GMT row measures the recovered integers and the propagated matching: the default run's GMT row (0.166 rad)
    assert 0.14 < table2.loc["GMT", "phi_rms"] < 0.19 and 0.025 < table2.loc["GMT", "eta_rms"] < 0.04
    propagation = pd.read_csv(run3 / "results/tables/propagation_accuracy.csv").set_index("pt_bin")
    assert propagation.loc["all", "efficiency_propagated"] > propagation.loc["all", "efficiency_true"] - 0.05


def test_apply_stage_refits_the_l1_scouting_file(run3):
    skim = pd.read_parquet(run3 / "results/skims/scout.parquet")
    predictions = pd.read_parquet(run3 / "results/predictions/A/final/scout.parquet")
    assert len(predictions) == len(skim) > 0 and "reco_pt" not in predictions
    assert {"orbit", "bx", "pred_pt", "pred_eta", "pred_phi"} <= set(predictions.columns)
    assert (run3 / "results/inspect/scout.json").is_file()
