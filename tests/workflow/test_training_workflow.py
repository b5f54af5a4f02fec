"""The training fan-out through the real DAG on a tiny config: reproducible tables, targeted reruns, schema errors."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.workflow


def test_tables_and_artifacts(snakemake, trained):
    workdir, _ = trained
    table = pd.read_csv(workdir / "results/tables/table2.csv")
    assert table.model.tolist() == ["GMT", "A", "B", "LUT"]
    assert {"phi_rms", "pt_tail", "phi_rms_std", "pt_tail_std"} <= set(table.columns)
    assert (workdir / "results/tables/table2.md").read_text().count("±") > 0
    assert "\\toprule" in (workdir / "results/tables/table2.tex").read_text()
    assert pd.read_csv(workdir / "results/tables/table1.csv").model.tolist() == ["A", "B"]
    for model in ("A", "B"):
        for sub in ("fold0", "fold1", "final"):
            assert (workdir / f"results/models/{model}/{sub}/model.pt").exists()
            history = pd.read_csv(workdir / f"results/models/{model}/{sub}/history.csv")
            assert list(history.columns[:3]) == ["epoch", "loss", "val_loss"] and len(history) >= 1
        log = (workdir / f"logs/train/{model}/fold0.log").read_text()
        assert "epoch 1/2" in log
    pred = pd.read_parquet(workdir / "results/predictions/A/fold0.parquet")
    assert {"pred_phi", "pred_eta", "pred_pt", "reco_pt", "hwPt"} <= set(pred.columns)
    assert pred[["pred_phi", "pred_eta", "pred_pt"]].notna().all().all()
    # the mass dataset: the reweighted network, the limit, their Table 2 and their resonance rows
    mass = pd.read_csv(workdir / "results/tables/table2_muonia.csv")
    assert mass.model.tolist() == ["GMT", "B", "B reweighted", "limit"]
    weights = json.loads((workdir / "results/models/B/reweighted/weights.json").read_text())
    assert weights["target"] == "muonia" and 0 < weights["effective_fraction"] < 1
    sources = set(pd.read_csv(workdir / "results/tables/resonances.csv")["source"])
    assert {"GMT", "NN", "NN (ZeroBias)", "limit", "limit pT only", "NN angles only", "offline"} <= sources


def test_rerun_gives_bit_identical_table2(snakemake, trained):
    """Table 2 recomputed from the same predictions (test_second_directory_gives_byte_identical_tables reruns
    every job upstream of it, in another directory)."""
    workdir, config = trained
    first = (workdir / "results/tables/table2.csv").read_bytes()
    snakemake("--cores", "2", f"--configfile={config}", "--directory", str(workdir), "-f",
              "results/tables/table2.csv")  # fmt: skip
    assert (workdir / "results/tables/table2.csv").read_bytes() == first


def test_config_saved_with_its_keys_in_another_order_reruns_nothing(snakemake, trained, tiny):
    """The same settings in another key order (as yaml.safe_dump or an editor may write them) change no job."""
    workdir, _ = trained

    def reverse(value, names=False):
        """Every setting's keys in reverse order; dataset and model names (an order that means something) kept."""
        if not isinstance(value, dict):
            return value
        items = value.items() if names else reversed(value.items())
        return {k: reverse(v, names=k in ("datasets", "models") and not names) for k, v in items}

    config = workdir / "reordered.yaml"
    config.write_text(yaml.safe_dump(reverse(tiny), sort_keys=False))
    proc = snakemake("-n", f"--configfile={config}", "--directory", str(workdir), "all")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_changing_one_model_reruns_only_its_jobs(snakemake, trained, tmp_path, tiny, write_config, job_counts):
    workdir, _ = trained
    changed = {**tiny, "models": {**tiny["models"], "A": {**tiny["models"]["A"], "loss": "mse"}}}
    config = write_config(tmp_path / "changed.yaml", changed)
    proc = snakemake("-n", f"--configfile={config}", "--directory", str(workdir), "all")
    counts = job_counts(proc)
    # only model A's three training jobs, its two predictions and the two tables: B, the baselines, the skim and
    # the generation stay as they are
    assert counts == {"train": 3, "predict": 2, "table1": 1, "table2": 1, "all": 1}, counts


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [("loss", "hinge", "['mse', 'msle', 'logcosh']"),
     ("optimizer", "rmsprop", "['adam', 'adadelta', 'adagrad', 'sgd']"),
     ("hidden_activation", "tanh", "['relu', 'softmax']")],
)  # fmt: skip
def test_unknown_model_settings_are_schema_errors(snakemake, tmp_path, field, value, allowed, tiny, write_config):
    config = write_config(tmp_path / "c.yaml", {**tiny, "models": {"A": {**tiny["models"]["A"], field: value}}})
    proc = snakemake("-n", f"--configfile={config}", "--directory", str(tmp_path), "all", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"'{value}' is not one of {allowed}" in out and field in out


def test_unknown_training_dataset_is_named(snakemake, tmp_path, tiny, write_config):
    config = write_config(tmp_path / "c.yaml", {**tiny, "training": {**tiny["training"], "dataset": "nope"}})
    proc = snakemake("-n", f"--configfile={config}", "--directory", str(tmp_path), "all", check=False)
    assert proc.returncode != 0 and "training.dataset 'nope' is not a configured dataset" in proc.stdout + proc.stderr


def test_analysis_figures_and_tables(snakemake, trained):
    workdir, _ = trained
    for stem in ("fig2_residuals", "fig3_mass", "resonances", "turn_on"):
        for ext in ("png", "pdf"):
            assert (workdir / f"results/plots/{stem}.{ext}").stat().st_size > 10_000, stem
    fits = pd.read_csv(workdir / "results/tables/resonances.csv")
    sources = ("GMT", "NN", "offline", "NN (ZeroBias)", "limit", "NN pT only", "NN angles only", "limit pT only",
               "limit angles only")  # fmt: skip
    assert fits[["resonance", "source"]].values.tolist() == [[r, s] for r in ("jpsi", "upsilon1s") for s in sources]
    offline = fits[(fits.source == "offline") & (fits.resonance == "upsilon1s")].iloc[0]
    assert offline.valid and abs(offline["shift"]) < 0.002  # offline peaks at the PDG mass
    turn_on = pd.read_csv(workdir / "results/tables/turn_on.csv")
    assert set(turn_on.threshold) == {5.0, 10.0} and set(turn_on.source) == {"GMT", "NN"}
    assert "Figure 2" in (workdir / "logs/plots/fig2.log").read_text()
    pred = pd.read_parquet(workdir / "results/predictions/B/final/muonia.parquet")
    assert pred["pred_pt"].notna().all() and len(pred) > 1000


def test_onnx_export_and_table3(snakemake, trained):
    workdir, _ = trained
    assert "max |diff|" in (workdir / "logs/export/B.log").read_text()
    table3 = pd.read_csv(workdir / "results/tables/table3.csv")
    assert set(table3.source) == {"measured", "paper (published)"}
    roofline = table3[table3.backend == "SGEMM roofline"]
    assert len(roofline) == 2 and (roofline.gflops > 0).all()
    measured = table3[(table3.source == "measured") & (table3.backend != "SGEMM roofline")]
    assert (measured.throughput_per_s > 0).all() and set(measured.batch_size) == {1, 256}
    assert (measured.loc[measured.precision == "fp32", "roofline_fraction"] > 0).all()
    assert {"int8 (static QDQ)", "fp32"} <= set(measured.precision)
    assert (workdir / "results/plots/throughput.png").stat().st_size > 10_000
    int8 = pd.read_csv(workdir / "results/tables/int8_metrics.csv")
    assert int8.model.tolist()[0] == "GMT" and len(int8) == 3


def test_fake_identification(trained, tmp_path):
    """The fake classifier's table against the out-of-fold probabilities, and `l1refit refit --fakeid`."""
    import subprocess
    import sys

    from l1refit.analysis.fakeid import auc, quality_score

    workdir, _ = trained
    table = pd.read_csv(workdir / "results/tables/fakeid.csv")
    oof = pd.read_parquet(workdir / "results/predictions/fakeid/oof.parquet")
    candidates = pd.read_parquet(workdir / "results/skims/zerobias.candidates.parquet")
    assert len(oof) == len(candidates) and set(oof["fold"]) == {0, 1} and 0 < candidates["is_fake"].mean() < 0.5
    for fold, rows in oof.groupby("fold"):
        for method, score in (("mlp", rows["fake_prob"]), ("quality", quality_score(rows))):
            row = table[(table["method"] == method) & (table["fold"] == str(fold))]
            assert row["auc"].item() == pytest.approx(auc(rows["is_fake"], score), abs=1e-6)
    assert (workdir / "results/plots/fakeid_roc.png").stat().st_size > 10_000
    # the regression's out-of-fold predictions carry the same fold's fake probability of each muon
    keys = ["part", "entry", "l1_index"]
    for model in ("A", "B"):
        pred = pd.concat(pd.read_parquet(workdir / f"results/predictions/{model}/fold{k}.parquet") for k in (0, 1))
        both = pred.merge(oof, on=keys, suffixes=("", "_oof"))
        assert len(both) == len(pred)
        np.testing.assert_allclose(both["fake_prob"], both["fake_prob_oof"], atol=1e-6)  # other batches, same net
    mass = pd.read_parquet(workdir / "results/predictions/B/reweighted/muonia.parquet")
    assert mass["fake_prob"].between(0, 1).all()
    # Figure 3 from every selected muon, before and after the cut: the cut only removes pairs
    fits = pd.read_csv(workdir / "results/tables/resonances_fakeid.csv").set_index(["resonance", "source"])
    assert set(fits.index.get_level_values("source")) == {"NN", "NN cut"}
    for resonance in ("jpsi", "upsilon1s"):
        assert 0 < fits.loc[(resonance, "NN cut"), "entries"] <= fits.loc[(resonance, "NN"), "entries"]
    assert (workdir / "results/plots/fig3_fakeid.png").stat().st_size > 10_000
    out = tmp_path / "refit.parquet"
    cli = [sys.executable, "-m", "l1refit.cli", "refit", "--model", str(workdir / "results/onnx/B.onnx"),
           "--fakeid", str(workdir / "results/onnx/fakeid.onnx"), str(workdir / "results/ntuples/zerobias/0.root"),
           str(out)]  # fmt: skip
    subprocess.run(cli, check=True, capture_output=True)
    import onnxruntime as ort

    both = ort.InferenceSession(str(workdir / "results/onnx/B_fakeid.onnx"))  # the regression with a second output
    assert [o.name for o in both.get_outputs()] == ["corrected", "fake_prob"]
    refit = pd.read_parquet(out)
    assert refit["fake_prob"].notna().sum() == len(candidates)
    assert refit["fake_prob"].between(0, 1).sum() == len(candidates)


def test_report(snakemake, trained):
    workdir, config = trained
    snakemake(f"--configfile={config}", "--directory", str(workdir), "--report", "results/report.html")
    html = (workdir / "results/report.html").read_text()
    assert len(html) > 100_000
    for text in ("Paper Figure 2", "Paper Figure 3", "Resonance fits", "Turn-on curves", "Paper Table 2",
                 "Paper Table 3", "fig2_residuals.png", "resonances.csv", "table2.csv"):  # fmt: skip
        assert text in html, text


def test_second_directory_gives_byte_identical_tables(snakemake, trained, tmp_path):
    """The same config in a fresh directory reproduces every table and prediction bit for bit.

    Excluded: table3.csv, which holds wall-clock timings (measurements, not results).
    """
    workdir, config = trained
    snakemake("--cores", "2", f"--configfile={config}", "--directory", str(tmp_path), "all")
    tables = sorted(p.relative_to(workdir) for p in (workdir / "results/tables").glob("*.csv"))
    tables = [p for p in tables if p.name != "table3.csv"]
    # cutflows x2, calibration, tables 1 and 2, resonances, turn-on, int8, table2_muonia, fake-ID, its working points
    # and its resonances
    assert len(tables) == 12
    predictions = sorted(p.relative_to(workdir) for p in (workdir / "results/predictions").rglob("*.parquet"))
    for path in tables:
        assert (tmp_path / path).read_bytes() == (workdir / path).read_bytes(), path
    for path in predictions:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / path), pd.read_parquet(workdir / path))


def test_fpga_stage_on_the_trained_models(snakemake, trained, tiny, write_config, job_counts):
    """Turning the FPGA stage on runs only its jobs: the quantisation-aware fine-tuning per split, the scan, the
    hls4ml project whose C simulation equals the emulator (checked inside the rule: it fails otherwise), the da4ml
    Verilog (its Verilator simulation switched off here), the firmware's predictions and its Figure-2/3 curves and
    resonance rows, and Table 2's QAT row."""
    workdir, _ = trained
    # the Verilator simulation is off here (tests/deploy/test_fpga.py simulates designs; verilating this one is ~1 min)
    fpga = {**tiny["fpga"], "enabled": True, "rtl_simulation": "off"}
    config = write_config(workdir / "fpga.yaml", {**tiny, "fpga": fpga})
    dry = snakemake("-n", f"--configfile={config}", "--directory", str(workdir), "all")
    # ... and Figures 2 and 3, Table 2 (the QAT row) and Table 3 (the estimate in the plot) again
    assert job_counts(dry) == {"fpga_qat": 3, "fpga_qat_predict": 2, "fpga_precision": 1, "fpga_oof": 2,
                               "fpga_firmware": 1, "fpga_rtl_simulation": 1, "fpga_predict": 2, "table2": 1,
                               "fig2": 1, "dimuon": 1, "table2_mass": 1, "table3": 1, "fpga_fakeid": 1,
                               "all": 1}  # fmt: skip
    snakemake("--cores", "2", f"--configfile={config}", "--directory", str(workdir), "all")
    scan = pd.read_csv(workdir / "results/tables/fpga_precision.csv")
    assert scan["precision"].tolist()[0] == "float" and len(scan) == 3
    assert scan["training"].tolist() == ["float", "post-training", "quantisation-aware"]
    assert scan["luts_estimate"].iloc[1] > 1000 and scan["why"].iloc[0] == "the float network (reference)"
    check = (workdir / "results/fpga/B/hls/l1refit_check.json").read_text()
    assert '"rows_checked": 300' in check and (workdir / "results/fpga/B/hls/build_prj.tcl").is_file()
    assert any((workdir / "results/fpga/B/rtl").rglob("*.v"))
    rtl_sim = json.loads((workdir / "results/fpga/B/rtl_simulation.json").read_text())
    assert rtl_sim == {"mode": "off", "status": "skipped", "why": "fpga.rtl_simulation is off"}
    table2 = pd.read_csv(workdir / "results/tables/table2.csv")
    assert "B-QAT" in set(table2.iloc[:, 0])
    qat_history = pd.read_csv(workdir / "results/fpga/B/qat/fold0/history.csv")
    assert qat_history["epoch"].tolist() == [0, 1]
    table3 = pd.read_csv(workdir / "results/tables/table3_fpga.csv")
    assert (
        table3["source"].str.startswith("estimate").sum() == 2 and table3["source"].str.startswith("paper").sum() == 3
    )
    firmware = pd.read_parquet(workdir / "results/predictions/B/fpga/zerobias.parquet")
    skim = pd.read_parquet(workdir / "results/skims/zerobias.parquet")
    assert len(firmware) == len(skim) and firmware[["pred_phi", "pred_eta", "pred_pt"]].notna().all().all()
    assert (workdir / "results/predictions/B/fpga/muonia.parquet").is_file()
    resonances = pd.read_csv(workdir / "results/tables/resonances.csv")
    assert resonances["source"].unique().tolist() == [
        "GMT", "NN", "offline", "FPGA", "NN (ZeroBias)", "limit", "NN pT only", "NN angles only", "limit pT only",
        "limit angles only",
    ]  # fmt: skip
    mass = pd.read_csv(workdir / "results/tables/table2_muonia.csv")
    assert mass.model.tolist() == ["GMT", "B", "B reweighted", "FPGA", "limit"]
    # the fake classifier as firmware: its scan out of fold, the chosen design checked against the C simulation
    from l1refit.deploy.fpga.fakeid import FakeDesign, firmware_features
    from l1refit.ml.fakeid import FakeClassifier

    fake_scan = pd.read_csv(workdir / "results/tables/fakeid_fpga.csv")
    assert fake_scan["precision"].tolist() == ["float", "ap_fixed<16,6,AP_RND,AP_SAT>"]
    assert fake_scan["luts_estimate"].iloc[1] > 1000 and fake_scan["auc_loss"].iloc[1] < 0.01
    assert '"rows_checked": 300' in (workdir / "results/fpga/fakeid/hls/l1refit_check.json").read_text()
    assert any((workdir / "results/fpga/fakeid/rtl").rglob("*.v"))
    design = FakeDesign.load(workdir / "results/fpga/fakeid/design.json")
    candidates = pd.read_parquet(workdir / "results/skims/zerobias.candidates.parquet")
    float_prob = FakeClassifier.load(workdir / "results/models/fakeid/final/model.pt").predict_proba(candidates)
    assert np.max(np.abs(design.probability(firmware_features(candidates, design.inputs)) - float_prob)) < 0.05
    assert sorted(design.cuts) == ["0.95", "0.98", "0.99"]


def test_search_trains_its_new_points_and_ranks_them_by_their_fold_metrics(snakemake, trained, tiny, tmp_path, repo,
                                                                             write_config, job_counts):  # fmt: skip
    """A one-at-a-time search around model A over two losses: A is a configured model (reused), mse is new."""
    from l1refit.analysis.metrics import Windows, prediction_metrics

    workdir, _ = trained
    search = {"strategy": "one_at_a_time", "base": tiny["models"]["A"], "handles": {"loss": ["logcosh", "mse"]},
              "rank_by": "phi_rms"}  # fmt: skip
    config = write_config(tmp_path / "search.yaml", {**tiny, "search": search})
    dry = snakemake("-n", f"--configfile={config}", "--directory", str(workdir), "results/tables/search.csv")
    assert "search (one_at_a_time): 2 points, 1 new models x 2 folds = 4 jobs" in dry.stderr
    assert job_counts(dry) == {"train": 2, "predict": 2, "search": 1}, job_counts(dry)
    snakemake("--cores", "2", f"--configfile={config}", "--directory", str(workdir), "results/tables/search.csv")
    table = pd.read_csv(workdir / "results/tables/search.csv")
    assert set(table["model"]) == {"A", "S_mse_adam_noreg_relu_linear"}
    assert (workdir / "results/plots/search.png").is_file()
    metrics = yaml.safe_load((repo / "config/config.yaml").read_text())["metrics"]
    windows = Windows.from_config({key: metrics[key] for key in ("core", "tail")})
    for row in table.itertuples():
        folds = [prediction_metrics(pd.read_parquet(workdir / f"results/predictions/{row.model}/fold{k}.parquet"),
                                    windows) for k in (0, 1)]  # fmt: skip
        for metric in ("phi_rms", "pt_core", "eta_tail"):
            assert getattr(row, metric) == pytest.approx(sum(f[metric] for f in folds) / 2, rel=1e-5)  # CSV: 6 digits
    assert table["phi_rms"].is_monotonic_increasing and table["phi_rms_rank"].tolist() == [1, 2]
    assert table.loc[0, "loss"] == ("logcosh" if table.loc[0, "model"] == "A" else "mse")
    assert "phi_rms" in table.loc[0, "best"].split(";")
