# Analysis stage: paper Figures 2 and 3, the resonance fits and the turn-on curves, all from the analysis model.
# Figure 2 and the turn-on curves use the out-of-fold predictions (no muon judged by a network that saw it);
# Figure 3 applies the final network (trained on all folds) to the mass dataset, which it never saw.


rule predict_dataset:
    input:
        model="results/models/{model}/final/model.pt",
        skim="results/skims/{dataset}.parquet",
    output:
        "results/predictions/{model}/final/{dataset}.parquet",
    log:
        "logs/predict/{model}/final/{dataset}.log",
    conda:
        "../../envs/l1refit.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    message:
        "Apply the final model {wildcards.model} to every muon of {wildcards.dataset}"
    script:
        "../scripts/predict_dataset.py"


rule fig2:
    input:
        ANALYSIS_PREDICTIONS,
    output:
        png=report(
            "results/plots/fig2_residuals.png",
            caption="../report/fig2.rst",
            category="Figures",
        ),
        pdf="results/plots/fig2_residuals.pdf",
    log:
        "logs/plots/fig2.log",
    conda:
        "../../envs/l1refit.yaml"
    resources:
        mem_mb=3000,
    params:
        model=ANALYSIS_MODEL,
        metrics=config["metrics"],
        dataset=TRAINING["dataset"],
        simulation=is_synthetic(TRAINING["dataset"]),
    message:
        "Figure 2: residuals of GMT and model {params.model}"
    script:
        "../scripts/fig2.py"


rule dimuon:
    input:
        f"results/predictions/{ANALYSIS_MODEL}/final/{MASS_DATASET}.parquet",
    output:
        fig3_png=report(
            "results/plots/fig3_mass.png",
            caption="../report/fig3.rst",
            category="Figures",
        ),
        fig3_pdf="results/plots/fig3_mass.pdf",
        table=report(
            "results/tables/resonances.csv",
            caption="../report/resonances_table.rst",
            category="Tables",
        ),
        overlay_png=report(
            "results/plots/resonances.png",
            caption="../report/resonances.rst",
            category="Figures",
        ),
        overlay_pdf="results/plots/resonances.pdf",
    log:
        "logs/plots/dimuon.log",
    benchmark:
        "logs/benchmarks/plots/dimuon.tsv"
    conda:
        "../../envs/l1refit.yaml"
    resources:
        mem_mb=4000,
    params:
        model=ANALYSIS_MODEL,
        plots=config["plots"],
        dataset=MASS_DATASET,
        simulation=is_synthetic(MASS_DATASET),
    message:
        "Figure 3 and resonance fits on {params.dataset}"
    script:
        "../scripts/dimuon.py"


rule turn_on:
    input:
        ANALYSIS_PREDICTIONS,
    output:
        png=report(
            "results/plots/turn_on.png",
            caption="../report/turn_on.rst",
            category="Figures",
        ),
        pdf="results/plots/turn_on.pdf",
        table=report(
            "results/tables/turn_on.csv",
            caption="../report/turn_on_table.rst",
            category="Tables",
        ),
    log:
        "logs/plots/turn_on.log",
    conda:
        "../../envs/l1refit.yaml"
    resources:
        mem_mb=3000,
    params:
        model=ANALYSIS_MODEL,
        plots=config["plots"],
        dataset=TRAINING["dataset"],
        simulation=is_synthetic(TRAINING["dataset"]),
    message:
        "Turn-on curves with GMT and model {params.model} pT"
    script:
        "../scripts/turn_on.py"
