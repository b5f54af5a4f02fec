# Fake identification: a classifier of the selected L1 muons (fake: no offline muon matched it) trained on the
# training dataset's candidate table, one job per split with the regression's folds and seeds (l1refit.ml.fakeid),
# and judged out of fold beside the quality cut alone (l1refit.analysis.fakeid); the one trained on all folds is
# exported to ONNX for `l1refit refit --fakeid` (l1refit.deploy.fakeid), and with the analysis model as one graph
# with both outputs (l1refit.deploy.combined).


rule train_fakeid:
    input:
        candidates=TRAINING_CANDIDATES,
    output:
        model=PATHS["fakeid_model"],
        history=PATHS["fakeid_history"],
    log:
        "logs/fakeid/{split}.log",
    benchmark:
        "logs/benchmarks/fakeid/{split}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        fakeid=FAKEID_SETTINGS,
        training=FAKEID_TRAINING,
        split=lambda wildcards: wildcards.split,
    message:
        "Train the fake classifier, {wildcards.split} (fold<k>: on the other folds; final: on all)"
    script:
        "../scripts/train_fakeid.py"


rule fakeid:
    input:
        models=expand(PATHS["fakeid_model"], split=[f"fold{k}" for k in FOLDS]),
        candidates=TRAINING_CANDIDATES,
    output:
        predictions=PATHS["fakeid_oof"],
        table=report(
            PATHS["fakeid_table"],
            caption="../report/fakeid.rst",
            category="Fake identification",
        ),
        working_points=PATHS["fakeid_working_points"],
        roc_png=report(
            f"{PATHS['fakeid_roc']}.png",
            caption="../report/fakeid.rst",
            category="Fake identification",
        ),
        roc_pdf=f"{PATHS['fakeid_roc']}.pdf",
    log:
        "logs/fakeid/evaluate.log",
    benchmark:
        "logs/benchmarks/fakeid/evaluate.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        fakeid=FAKEID_SETTINGS,
        training=FAKEID_TRAINING,
    message:
        "Fake identification out of fold: ROC, AUC and working points beside the quality cut alone"
    script:
        "../scripts/evaluate_fakeid.py"


rule export_fakeid:
    input:
        model=PATHS["fakeid_model"].format(split="final"),
    output:
        onnx=PATHS["fakeid_onnx"],
    log:
        "logs/fakeid/export.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        selection=config["selection"],
    message:
        "Export the fake classifier (trained on all folds) to ONNX, checked against PyTorch"
    script:
        "../scripts/export_fakeid.py"


rule export_combined:
    input:
        regression=PATHS["onnx"].format(model=ANALYSIS_MODEL),
        fakeid=PATHS["fakeid_onnx"],
    output:
        onnx=PATHS["combined_onnx"].format(model=ANALYSIS_MODEL),
    log:
        "logs/fakeid/export_combined.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
    message:
        "One ONNX graph of {ANALYSIS_MODEL} and the fake classifier: corrected values and fake probability"
    script:
        "../scripts/export_combined.py"


rule fakeid_mass:
    input:
        candidates=PATHS["candidates"].format(dataset=MASS_DATASET),
        classifier=PATHS["fakeid_model"].format(split="final"),
        network=mass_network(),
        oof=PATHS["fakeid_oof"],
    output:
        table=report(
            PATHS["fakeid_mass_table"],
            caption="../report/fakeid_mass.rst",
            category="Fake identification",
        ),
        fig_png=report(
            f"{PATHS['fakeid_mass_plot']}.png",
            caption="../report/fakeid_mass.rst",
            category="Fake identification",
        ),
        fig_pdf=f"{PATHS['fakeid_mass_plot']}.pdf",
    log:
        "logs/fakeid/mass.log",
    benchmark:
        "logs/benchmarks/fakeid/mass.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
    params:
        fakeid=FAKEID_SETTINGS,
        plots=config["plots"],
        dataset=MASS_DATASET,
        simulation=is_synthetic(MASS_DATASET),
    message:
        "Figure 3 from every selected muon of {params.dataset}, before and after the fake-probability cut"
    script:
        "../scripts/fakeid_mass.py"
