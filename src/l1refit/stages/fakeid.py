"""Fake-identification stage (workflow/rules/fakeid.smk): a classifier per fold on the training dataset's
candidate table, and its out-of-fold evaluation beside the quality cut alone."""

from __future__ import annotations

import logging

import pandas as pd

from l1refit.formats.output import atomic_path
from l1refit.ml.fakeid import FakeClassifier, train_classifier
from l1refit.ml.fakeid_columns import FAKE_FEATURES, FAKE_PROB, LABEL
from l1refit.stages.folds import fold_number, job_seed, split_rows, write_predictions
from l1refit.stages.plots import figure_stem

log = logging.getLogger(__name__)

IDENTITY = ("run", "lumi", "event", "part", "entry", "l1_index")  # what names a candidate in the predictions


def read_candidates(candidates: str) -> pd.DataFrame:
    """The columns of a candidate table the classifier jobs use: identity (the folds hash the event), features,
    label."""
    columns = list(dict.fromkeys((*IDENTITY, *FAKE_FEATURES, LABEL)))
    return pd.read_parquet(candidates, columns=columns)


def train(*, candidates: str, fakeid: dict, training: dict, split: str, model: str, history: str) -> None:
    """Train the classifier on every fold but ``split`` (``final``: on all folds); save it and its history."""
    fold = fold_number(split)
    rows, _ = split_rows(read_candidates(candidates), training, fold)
    log.info("fake classifier, %s: %d candidates, %.1f %% fake", split, len(rows), 100 * rows[LABEL].mean())
    classifier, hist = train_classifier(
        rows,
        hidden=tuple(fakeid["hidden"]),
        epochs=fakeid["epochs"],
        batch_size=fakeid["batch_size"],
        learning_rate=fakeid["learning_rate"],
        patience=fakeid["patience"],
        validation_fraction=training["validation_fraction"],
        seed=job_seed(training, fold),
    )
    classifier.save(model)
    with atomic_path(history) as tmp:
        hist.to_csv(tmp, index=False)


def evaluate(
    *,
    models: list[str],
    candidates: str,
    fakeid: dict,
    training: dict,
    predictions: str,
    table: str,
    working_points: str,
    roc_png: str,
    roc_pdf: str,
) -> None:
    """Out-of-fold fake probabilities of every candidate, the AUC and working points per fold of the classifier and
    of the quality cut alone, and the ROC plot."""
    from l1refit.analysis import fakeid as evaluation  # matplotlib, scipy: not needed to train

    frame = read_candidates(candidates)
    efficiencies = tuple(fakeid["efficiencies"])
    folds, rows, points = [], [], []
    curves: dict[str, list] = {"mlp": [], "quality": []}
    for fold, path in enumerate(models):
        _, test = split_rows(frame, training, fold)
        test = test.reset_index(drop=True)
        test[FAKE_PROB] = FakeClassifier.load(path).predict_proba(test)
        folds.append(test.assign(fold=fold))
        is_fake = test[LABEL].to_numpy()
        for method, score in (("mlp", test[FAKE_PROB].to_numpy()), ("quality", evaluation.quality_score(test))):
            rows.append({"method": method, "fold": fold, **evaluation.fakeid_metrics(is_fake, score, efficiencies)})
            points.append(evaluation.working_points(is_fake, score, efficiencies).assign(method=method, fold=fold))
            curves[method].append((is_fake, score))
        log.info("fold %d: %d candidates, AUC %.4f (quality cut alone %.4f)", fold, len(test), rows[-2]["auc"],
                 rows[-1]["auc"])  # fmt: skip
    write_predictions(pd.concat(folds, ignore_index=True), predictions)
    summary = evaluation.fakeid_table(rows)
    wp = pd.concat(points, ignore_index=True)
    wp = wp[["method", "fold", *(c for c in wp.columns if c not in ("method", "fold"))]]
    for frame_out, path in ((summary, table), (wp, working_points)):
        with atomic_path(path) as tmp:
            frame_out.to_csv(tmp, index=False, float_format="%.6g")
    evaluation.roc_plot(curves, roc_png, roc_pdf, efficiencies=efficiencies, dataset=training.get("dataset", ""))
    log.info("fake identification, out of fold:\n%s", summary.to_string(index=False))


def export(*, model: str, selection: dict, onnx: str) -> None:
    """The classifier trained on all folds as an ONNX graph with the candidates' selection in its metadata."""
    from l1refit.deploy.fakeid import export_fakeid  # onnx: only this job pays for it
    from l1refit.skim.selection import Selection

    export_fakeid(FakeClassifier.load(model), onnx, Selection.from_config(selection))
    log.info("%s written", onnx)


def combined(*, regression: str, fakeid: str, onnx: str) -> None:
    """The analysis model's graph and the classifier's as one graph with both outputs (l1refit.deploy.combined)."""
    from l1refit.deploy.combined import export_combined

    export_combined(regression, fakeid, onnx)
    log.info("%s written: input features, outputs corrected and fake_prob", onnx)


def cut_thresholds(*, oof: str, efficiencies) -> dict[float, float]:
    """{efficiency: the fake-probability threshold that keeps that fraction of the training dataset's real muons},
    from the out-of-fold probabilities ``oof``."""
    from l1refit.analysis import fakeid as evaluation  # matplotlib, scipy: not needed to train

    frame = pd.read_parquet(oof, columns=[LABEL, FAKE_PROB])
    points = evaluation.working_points(frame[LABEL].to_numpy(), frame[FAKE_PROB].to_numpy(), tuple(efficiencies))
    return {float(e): float(t) for e, t in zip(points["real_efficiency_target"], points["threshold"], strict=True)}


def mass_cut(*, oof: str, efficiency: float) -> float:
    """The fake-probability threshold that keeps ``efficiency`` of the training dataset's real muons, out of fold."""
    return cut_thresholds(oof=oof, efficiencies=(efficiency,))[float(efficiency)]


def mass(
    *,
    candidates: str,
    classifier: str,
    network: str,
    oof: str,
    fakeid: dict,
    plots: dict,
    dataset: str,
    simulation: bool,
    table: str,
    fig_png: str,
    fig_pdf: str,
) -> pd.DataFrame:
    """Figure 3 from every selected L1 muon of the mass dataset (fakes included, as scouting data are), before and
    after the fake-probability cut at ``fakeid.mass_cut_efficiency`` (the threshold from the training dataset's
    out-of-fold probabilities), with the resonance fits of the network's masses before and after: what the cut does
    to the yields and background (the GMT masses are drawn, not fitted: the multi-start fits take seconds each)."""
    from l1refit.analysis.dimuon import pair_masses  # the mass job's own modules (see stages/plots.py)
    from l1refit.analysis.fit import fit_table, fitted_windows
    from l1refit.analysis.plots import fake_cut_mass
    from l1refit.ml.checkpoint import TrainedModel

    frame = pd.read_parquet(candidates)
    frame[FAKE_PROB] = FakeClassifier.load(classifier).predict_proba(frame)
    frame = frame.assign(**TrainedModel.load(network).predict(frame))
    threshold = mass_cut(oof=oof, efficiency=fakeid["mass_cut_efficiency"])
    kept = frame[frame[FAKE_PROB] <= threshold]
    masses = {}
    for suffix, rows in (("", frame), (" cut", kept)):
        masses |= {f"{source}{suffix}": m for source, m in pair_masses(rows, sources=("GMT", "NN")).items()}
    nn_masses = {name: m for name, m in masses.items() if name.startswith("NN")}
    fits, _ = fit_table(nn_masses, fitted_windows(plots["resonances"]))
    fits["background"] = fits["entries"] - fits["signal"]
    fits["fake_prob_max"] = threshold
    with atomic_path(table) as tmp:
        fits.to_csv(tmp, index=False, float_format="%.6g")
    cut = f"fake prob. ≤ {threshold:.3g} ({fakeid['mass_cut_efficiency']:.0%} real eff.)"
    low, high = (float(v) for v in plots["mass_range"])
    fake_cut_mass(masses, figure_stem(fig_png, fig_pdf), cut=cut, mass_range=(low, high), bins=plots["mass_bins"],
                  dataset=dataset, simulation=simulation)  # fmt: skip
    log.info("%d of %d selected muons kept by %s", len(kept), len(frame), cut)
    if LABEL in frame:  # the mass dataset has offline muons: how many of its fakes the cut removed
        log.info("%.1f %% of the muons labelled fake removed, %.1f %% of the real ones kept",
                 100 * (1 - kept[LABEL].sum() / max(frame[LABEL].sum(), 1)),
                 100 * (~kept[LABEL]).sum() / max((~frame[LABEL]).sum(), 1))  # fmt: skip
    log.info("resonances:\n%s", fits.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return fits
