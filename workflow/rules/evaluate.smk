# Evaluation stage: baselines evaluated out of fold like the models, and the paper's Tables 1 and 2
# (mean and standard deviation over folds), as CSV, Markdown and LaTeX.


rule baseline:
    input:
        TRAINING_SKIM,
    output:
        "results/predictions/baselines/{baseline}/fold{fold}.parquet",
    log:
        "logs/baseline/{baseline}/fold{fold}.log",
    benchmark:
        "logs/benchmarks/baseline/{baseline}/fold{fold}.tsv"
    conda:
        "../../envs/l1refit.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    params:
        training=TRAINING,
        fold=fold_index,
    message:
        "Baseline {wildcards.baseline} trained on the folds other than {wildcards.fold}"
    script:
        "../scripts/baseline.py"


rule table1:
    output:
        csv=report(
            "results/tables/table1.csv",
            caption="../report/table1.rst",
            category="Tables",
        ),
        md="results/tables/table1.md",
    log:
        "logs/table1.log",
    localrule: True
    conda:
        "../../envs/l1refit.yaml"
    params:
        models=MODELS,
    message:
        "Table 1: the model definitions"
    script:
        "../scripts/table1.py"


rule table2:
    input:
        models=expand(
            "results/predictions/{model}/fold{fold}.parquet", model=MODELS, fold=FOLDS
        ),
        baselines=expand(
            "results/predictions/baselines/{baseline}/fold{fold}.parquet",
            baseline=BASELINES,
            fold=FOLDS,
        ),
    output:
        csv=report(
            "results/tables/table2.csv",
            caption="../report/table2.rst",
            category="Tables",
        ),
        md="results/tables/table2.md",
        tex="results/tables/table2.tex",
    log:
        "logs/table2.log",
    conda:
        "../../envs/l1refit.yaml"
    params:
        models=list(MODELS),
        baselines=BASELINES,
        folds=FOLDS,
        metrics=METRIC_WINDOWS,
    message:
        "Table 2: metrics of GMT, every model and the baselines, mean and std over folds"
    script:
        "../scripts/table2.py"
