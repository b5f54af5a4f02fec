# Analysis stage: paper Figures 2 and 3, the resonance fits and the turn-on curves, all from the analysis model.
# Figure 2 and the turn-on curves use the out-of-fold predictions (no muon judged by a network that saw it);
# Figure 3 applies the final network (trained on all folds) to the mass dataset, which it never saw.


rule predict_dataset:
    input:
        unpack(fake_prob_input("final")),
        model=trained("model.pt", "final"),
        skim=PATHS["skim"],
    output:
        predictions=PATHS["dataset_predictions"],
    log:
        "logs/predict/{model}/final/{dataset}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    message:
        "Apply the final model {wildcards.model} to every muon of {wildcards.dataset}"
    script:
        "../scripts/predict_dataset.py"


rule fig2:
    input:
        unpack(fig2_firmware_input),
        predictions=ANALYSIS_PREDICTIONS,
    output:
        png=report(
            f"{PATHS['fig2']}.png",
            caption="../report/fig2.rst",
            category="Figures",
        ),
        pdf=f"{PATHS['fig2']}.pdf",
    log:
        "logs/plots/fig2.log",
    conda:
        ENV
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
        unpack(dimuon_extra_input),
        predictions=mass_network_predictions(),
    output:
        fig3_png=report(
            f"{PATHS['fig3']}.png",
            caption="../report/fig3.rst",
            category="Figures",
        ),
        fig3_pdf=f"{PATHS['fig3']}.pdf",
        table=report(
            PATHS["resonances"],
            caption="../report/resonances_table.rst",
            category="Tables",
        ),
        overlay_png=report(
            f"{PATHS['resonance_plot']}.png",
            caption="../report/resonances.rst",
            category="Figures",
        ),
        overlay_pdf=f"{PATHS['resonance_plot']}.pdf",
    log:
        "logs/plots/dimuon.log",
    benchmark:
        "logs/benchmarks/plots/dimuon.tsv"
    conda:
        ENV
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
        predictions=ANALYSIS_PREDICTIONS,
    output:
        png=report(
            f"{PATHS['turn_on_plot']}.png",
            caption="../report/turn_on.rst",
            category="Figures",
        ),
        pdf=f"{PATHS['turn_on_plot']}.pdf",
        table=report(
            PATHS["turn_on_table"],
            caption="../report/turn_on_table.rst",
            category="Tables",
        ),
    log:
        "logs/plots/turn_on.log",
    conda:
        ENV
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
