# FPGA stage: the analysis model as fixed-point firmware (l1refit.deploy.fpga). The precision scan measures what
# every design costs in physics (out-of-fold Table-2 metrics, bit-exact emulation) and in resources (da4ml
# estimates); the narrowest design that costs no physics becomes the hls4ml project and the da4ml Verilog, whose C
# simulation must equal the emulator bit for bit; the emulated firmware then corrects whole datasets.
# No vendor tool runs here: every resource and latency figure is an estimate.


rule fpga_precision:
    input:
        unpack(fpga_scan_inputs),
    output:
        table=report(
            PATHS["fpga_precision"],
            caption="../report/fpga_precision.rst",
            category="FPGA",
        ),
    log:
        "logs/fpga/precision.log",
    benchmark:
        "logs/benchmarks/fpga/precision.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        fpga=config["fpga"],
        metrics=METRIC_WINDOWS,
    message:
        "Fixed-point precision scan of {ANALYSIS_MODEL}: physics cost and resource estimates"
    script:
        "../scripts/fpga_precision.py"


rule fpga_qat:
    input:
        model=trained("model.pt"),
        skim=TRAINING_SKIM,
    output:
        design=PATHS["qat_design"],
        history=PATHS["qat_history"],
    log:
        "logs/fpga/qat/{model}.{split}.log",
    benchmark:
        "logs/benchmarks/fpga/qat/{model}.{split}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        training=TRAINING,
        split=lambda wildcards: wildcards.split,
        fpga=config["fpga"],
    message:
        "Quantisation-aware fine-tuning of {wildcards.model} ({wildcards.split})"
    script:
        "../scripts/fpga_qat.py"


rule fpga_qat_predict:
    input:
        design=PATHS["qat_design"].replace("{split}", "fold{fold}"),
        skim=TRAINING_SKIM,
    output:
        predictions=PATHS["qat_predictions"],
    log:
        "logs/fpga/qat/{model}.fold{fold}.predict.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        training=TRAINING,
        fold=lambda wildcards: int(wildcards.fold),
    message:
        "Out-of-fold predictions of the quantisation-aware design of {wildcards.model}, fold {wildcards.fold}"
    script:
        "../scripts/fpga_qat_predict.py"


rule fpga_oof:
    input:
        unpack(qat_design_input("fold{fold}")),
        model=trained("model.pt", "fold{fold}"),
        scan=PATHS["fpga_precision"],
        skim=TRAINING_SKIM,
    output:
        predictions=PATHS["fpga_oof"],
    log:
        "logs/fpga/{model}.fold{fold}.oof.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        training=TRAINING,
        fold=lambda wildcards: int(wildcards.fold),
        units=config["fpga"]["units"],
    message:
        "Out-of-fold predictions of the chosen firmware design of {wildcards.model}, fold {wildcards.fold}"
    script:
        "../scripts/fpga_oof.py"


rule fpga_firmware:
    input:
        unpack(qat_design_input("final")),
        model=trained("model.pt", "final").format(model=ANALYSIS_MODEL),
        scan=PATHS["fpga_precision"],
        skim=TRAINING_SKIM,
    output:
        hls_dir=directory(PATHS["fpga_hls"].format(model=ANALYSIS_MODEL)),
        rtl_dir=directory(PATHS["fpga_rtl"].format(model=ANALYSIS_MODEL)),
        design=PATHS["fpga_design"].format(model=ANALYSIS_MODEL),
        table3=report(
            PATHS["table3_fpga"],
            caption="../report/table3_fpga.rst",
            category="FPGA",
        ),
    log:
        "logs/fpga/firmware.log",
    benchmark:
        "logs/benchmarks/fpga/firmware.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        fpga=config["fpga"],
    message:
        "hls4ml project and da4ml Verilog of {ANALYSIS_MODEL}; emulator checked against the C simulation"
    script:
        "../scripts/fpga_firmware.py"


rule fpga_predict:
    input:
        design=PATHS["fpga_design"],
        skim=PATHS["skim"],
    output:
        predictions=PATHS["fpga_predictions"],
    log:
        "logs/fpga/{model}.{dataset}.predict.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    message:
        "The emulated firmware of {wildcards.model} corrects every muon of {wildcards.dataset}"
    script:
        "../scripts/fpga_predict.py"


rule fpga_rtl_simulation:
    input:
        rtl_dir=PATHS["fpga_rtl"],
        design=PATHS["fpga_design"],
        skim=TRAINING_SKIM,
    output:
        result=PATHS["fpga_rtl_sim"],
    log:
        "logs/fpga/{model}.rtl_simulation.log",
    benchmark:
        "logs/benchmarks/fpga/{model}.rtl_simulation.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=3000,
    params:
        fpga=config["fpga"],
    message:
        "Verilator simulation of the Verilog of {wildcards.model}, checked against the emulator bit for bit"
    script:
        "../scripts/fpga_rtl_simulation.py"


rule fpga_fakeid:
    input:
        models=expand(PATHS["fakeid_model"], split=[f"fold{k}" for k in FOLDS]),
        final_model=PATHS["fakeid_model"].format(split="final"),
        candidates=TRAINING_CANDIDATES,
        oof=PATHS["fakeid_oof"],
    output:
        table=report(
            PATHS["fakeid_fpga"],
            caption="../report/fakeid_fpga.rst",
            category="FPGA",
        ),
        folds_table=PATHS["fakeid_fpga_folds"],
        design=PATHS["fakeid_design"],
        hls_dir=directory(PATHS["fakeid_hls"]),
        rtl_dir=directory(PATHS["fakeid_rtl"]),
    log:
        "logs/fpga/fakeid.log",
    benchmark:
        "logs/benchmarks/fpga/fakeid.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        fakeid=config["fakeid"],
        fpga=config["fpga"],
        training=FAKEID_TRAINING,
        selection=config["selection"],
    message:
        "Fake classifier as firmware: precision scan out of fold, hls4ml project and da4ml Verilog of the chosen design"
    script:
        "../scripts/fpga_fakeid.py"
