# Training stage: the paper's 5-fold cross-validation fan-out, one job per model x split (1 thread each, so
# --cores N runs N in parallel). Split fold<k> trains on the other folds and is judged out of fold on k; split
# final trains on all folds (the network that is exported and applied to other datasets). Folds come from the
# event identity (l1refit.ml.folds), so they never change when data are appended.


rule train:
    input:
        skim=TRAINING_SKIM,
    output:
        model=trained("model.pt"),
        history=trained("history.csv"),
        plot=report(
            trained("loss.png"),
            caption="../report/loss.rst",
            category="Training",
            subcategory="model {model}",
            labels={"model": "{model}", "split": "{split}"},
        ),
    log:
        "logs/train/{model}/{split}.log",
    cache: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        spec=model_spec,
        training=TRAINING,
        split=lambda wildcards: wildcards.split,
    message:
        "Train model {wildcards.model}, {wildcards.split} (fold<k>: on the other folds; final: on all)"
    script:
        "../scripts/train.py"


rule predict:
    input:
        unpack(fake_prob_input("fold{fold}", TRAINING["dataset"])),
        model=trained("model.pt", "fold{fold}"),
        skim=TRAINING_SKIM,
    output:
        predictions=PATHS["predictions"],
    log:
        "logs/predict/{model}/fold{fold}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        training=TRAINING,
        fold=lambda wildcards: int(wildcards.fold),
    message:
        "Out-of-fold predictions of model {wildcards.model} on fold {wildcards.fold}"
    script:
        "../scripts/predict.py"
