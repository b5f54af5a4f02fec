# Training stage: the paper's 5-fold cross-validation fan-out, one job per model x fold (1 thread each, so
# --cores N runs N in parallel), out-of-fold predictions, and a final training of every model on all folds.
# Folds come from the event identity (l1refit.folds), so they never change when data are appended.


if "train" in CACHED:

    rule train:
        input:
            TRAINING_SKIM,
        output:
            model="results/models/{model}/fold{fold}/model.pt",
            history="results/models/{model}/fold{fold}/history.csv",
            plot=report(
                "results/models/{model}/fold{fold}/loss.png",
                caption="../report/loss.rst",
                category="Training",
                subcategory="model {model}",
                labels={"model": "{model}", "fold": "{fold}"},
            ),
        log:
            "logs/train/{model}/fold{fold}.log",
        cache: True
        conda:
            "../../envs/l1refit.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        params:
            spec=model_spec,
            training=TRAINING,
            fold=fold_index,
        message:
            "Train model {wildcards.model} on the folds other than {wildcards.fold}"
        script:
            "../scripts/train.py"

else:

    rule train:
        input:
            TRAINING_SKIM,
        output:
            model="results/models/{model}/fold{fold}/model.pt",
            history="results/models/{model}/fold{fold}/history.csv",
            plot=report(
                "results/models/{model}/fold{fold}/loss.png",
                caption="../report/loss.rst",
                category="Training",
                subcategory="model {model}",
                labels={"model": "{model}", "fold": "{fold}"},
            ),
        log:
            "logs/train/{model}/fold{fold}.log",
        benchmark:
            "logs/benchmarks/train/{model}/fold{fold}.tsv"
        conda:
            "../../envs/l1refit.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        params:
            spec=model_spec,
            training=TRAINING,
            fold=fold_index,
        message:
            "Train model {wildcards.model} on the folds other than {wildcards.fold}"
        script:
            "../scripts/train.py"


rule predict:
    input:
        model="results/models/{model}/fold{fold}/model.pt",
        skim=TRAINING_SKIM,
    output:
        "results/predictions/{model}/fold{fold}.parquet",
    log:
        "logs/predict/{model}/fold{fold}.log",
    conda:
        "../../envs/l1refit.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        training=TRAINING,
        fold=fold_index,
    message:
        "Out-of-fold predictions of model {wildcards.model} on fold {wildcards.fold}"
    script:
        "../scripts/predict.py"


if "train_final" in CACHED:

    rule train_final:
        input:
            TRAINING_SKIM,
        output:
            model="results/models/{model}/final/model.pt",
            history="results/models/{model}/final/history.csv",
            plot=report(
                "results/models/{model}/final/loss.png",
                caption="../report/loss.rst",
                category="Training",
                subcategory="model {model}",
                labels={"model": "{model}", "fold": "all (final)"},
            ),
        log:
            "logs/train/{model}/final.log",
        cache: True
        conda:
            "../../envs/l1refit.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        params:
            spec=model_spec,
            training=TRAINING,
            fold=-1,
        message:
            "Train model {wildcards.model} on all folds (the model that is exported)"
        script:
            "../scripts/train.py"

else:

    rule train_final:
        input:
            TRAINING_SKIM,
        output:
            model="results/models/{model}/final/model.pt",
            history="results/models/{model}/final/history.csv",
            plot=report(
                "results/models/{model}/final/loss.png",
                caption="../report/loss.rst",
                category="Training",
                subcategory="model {model}",
                labels={"model": "{model}", "fold": "all (final)"},
            ),
        log:
            "logs/train/{model}/final.log",
        benchmark:
            "logs/benchmarks/train/{model}/final.tsv"
        conda:
            "../../envs/l1refit.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        params:
            spec=model_spec,
            training=TRAINING,
            fold=-1,
        message:
            "Train model {wildcards.model} on all folds (the model that is exported)"
        script:
            "../scripts/train.py"
