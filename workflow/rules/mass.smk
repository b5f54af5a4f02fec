# Mass-dataset stage: the network trained for the mass dataset's population (the training muons reweighted to
# its offline spectrum, l1refit.ml.reweight), the best any per-muon re-fit can do there (the cross-fitted per-cell
# limit), and Table 2 measured on the mass dataset for GMT, the networks, the firmware and the limit.


rule train_reweighted:
    input:
        skim=TRAINING_SKIM,
        target=PATHS["skim"].format(dataset=MASS_DATASET),
    output:
        model=PATHS["reweighted_model"].replace("{file}", "model.pt"),
        history=PATHS["reweighted_model"].replace("{file}", "history.csv"),
        plot=PATHS["reweighted_model"].replace("{file}", "loss.png"),
        weights=PATHS["reweighted_model"].replace("{file}", "weights.json"),
    log:
        "logs/train/{model}/reweighted.log",
    benchmark:
        "logs/benchmarks/train/{model}/reweighted.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
    params:
        spec=model_spec,
        training=TRAINING,
        reweight={
            k: v
            for k, v in config["reweight"].items()
            if k not in ("enabled", "epochs", "patience")
        },
        schedule={k: config["reweight"][k] for k in ("epochs", "patience")},
    message:
        "Train model {wildcards.model} on the training muons reweighted to {MASS_DATASET}"
    script:
        "../scripts/train_reweighted.py"


rule predict_reweighted:
    input:
        unpack(fake_prob_input("final")),
        model=PATHS["reweighted_model"].replace("{file}", "model.pt"),
        skim=PATHS["skim"],
    output:
        predictions=PATHS["reweighted_predictions"],
    log:
        "logs/predict/{model}/reweighted/{dataset}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    message:
        "Apply the reweighted model {wildcards.model} to every muon of {wildcards.dataset}"
    script:
        "../scripts/predict_reweighted.py"


rule mass_limit:
    input:
        skim=PATHS["skim"],
    output:
        predictions=PATHS["limit_predictions"],
    log:
        "logs/mass/{dataset}.limit.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        seed=TRAINING["seed"],
    message:
        "The per-cell limit of {wildcards.dataset}: cross-fitted on its own offline muons"
    script:
        "../scripts/mass_limit.py"


rule table2_mass:
    input:
        predictions=list(mass_sources().values()),
    output:
        csv=report(
            f"{PATHS['table2_mass']}.csv",
            caption="../report/table2_mass.rst",
            category="Tables",
        ),
        md=f"{PATHS['table2_mass']}.md",
        tex=f"{PATHS['table2_mass']}.tex",
    log:
        "logs/mass/{dataset}.table2.log",
    conda:
        ENV
    params:
        names=list(mass_sources()),
        metrics=METRIC_WINDOWS,
        partitions=TRAINING["folds"],
        seed=TRAINING["seed"],
    message:
        "Table 2 on {wildcards.dataset}: GMT, the networks, the firmware and the limit"
    script:
        "../scripts/table2_mass.py"
