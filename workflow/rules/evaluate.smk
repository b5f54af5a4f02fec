# Evaluation stage: baselines evaluated out of fold like the models, and the paper's Tables 1 and 2
# (mean and standard deviation over folds), as CSV, Markdown and LaTeX; the hyperparameter search ranked the same way.


rule baseline:
    input:
        skim=TRAINING_SKIM,
    output:
        predictions=PATHS["baseline"],
    log:
        "logs/baseline/{baseline}/fold{fold}.log",
    benchmark:
        "logs/benchmarks/baseline/{baseline}/fold{fold}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        name=lambda wildcards: wildcards.baseline,
        training=TRAINING,
        fold=lambda wildcards: int(wildcards.fold),
    message:
        "Baseline {wildcards.baseline} trained on the folds other than {wildcards.fold}"
    script:
        "../scripts/baseline.py"


rule table1:
    output:
        csv=report(
            f"{PATHS['table1']}.csv",
            caption="../report/table1.rst",
            category="Tables",
        ),
        md=f"{PATHS['table1']}.md",
    log:
        "logs/table1.log",
    localrule: True
    conda:
        ENV
    params:
        models=MODELS,
    message:
        "Table 1: the model definitions"
    script:
        "../scripts/table1.py"


rule table2:
    input:
        unpack(table2_qat_input),
        model_predictions=expand(PATHS["predictions"], model=MODELS, fold=FOLDS),
        baseline_predictions=expand(PATHS["baseline"], baseline=BASELINES, fold=FOLDS),
    output:
        csv=report(
            f"{PATHS['table2']}.csv",
            caption="../report/table2.rst",
            category="Tables",
        ),
        md=f"{PATHS['table2']}.md",
        tex=f"{PATHS['table2']}.tex",
    log:
        "logs/table2.log",
    conda:
        ENV
    params:
        models=list(MODELS),
        qat_name=QAT_NAME,
        baselines=BASELINES,
        folds=FOLDS,
        metrics=METRIC_WINDOWS,
    message:
        "Table 2: metrics of GMT, every model and the baselines, mean and std over folds"
    script:
        "../scripts/table2.py"


rule search:
    input:
        predictions=expand(PATHS["predictions"], model=SEARCH, fold=FOLDS),
    output:
        **figure(PATHS["search_plot"]),
        csv=report(
            PATHS["search"],
            caption="../report/search.rst",
            category="Tables",
        ),
    log:
        "logs/search.log",
    conda:
        ENV
    params:
        models=list(SEARCH),
        entries=SEARCH,
        base=lambda wildcards: config["search"]["base"],
        folds=FOLDS,
        metrics=METRIC_WINDOWS,
        rank_by=lambda wildcards: config["search"]["rank_by"],
        dataset=TRAINING["dataset"],
        simulation=is_synthetic(TRAINING["dataset"]),
    message:
        "The hyperparameter search: every point ranked by its out-of-fold metrics"
    script:
        "../scripts/search.py"
