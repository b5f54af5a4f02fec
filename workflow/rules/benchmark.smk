# Benchmark stage: paper Table 3 on this machine. The analysis model's ONNX graph (as exported, and an equivalent
# optimised inference graph), its int8 version and PyTorch eager, beside the paper's published FPGA rows. The job
# takes every core so that nothing else runs while it measures.


rule table3:
    input:
        unpack(table3_fpga_input),
        model=trained("model.pt", "final").format(model=ANALYSIS_MODEL),
        onnx=PATHS["onnx"].format(model=ANALYSIS_MODEL),
        skim=TRAINING_SKIM,
    output:
        csv=report(
            PATHS["table3"],
            caption="../report/table3.rst",
            category="Tables",
        ),
        png=report(
            PATHS["throughput"],
            caption="../report/throughput.rst",
            category="Figures",
        ),
        precision=report(
            PATHS["int8_metrics"],
            caption="../report/int8_metrics.rst",
            category="Tables",
        ),
        int8=f"results/onnx/{ANALYSIS_MODEL}_int8.onnx",
        optimised=f"results/onnx/{ANALYSIS_MODEL}_optimised.onnx",
    log:
        "logs/benchmark/table3.log",
    benchmark:
        "logs/benchmarks/table3.tsv"
    conda:
        ENV
    threads: all_cores
    resources:
        mem_mb=4000,
    params:
        benchmark=config["benchmark"],
    message:
        "Table 3: inference throughput and latency of model {ANALYSIS_MODEL} (all cores, nothing else running)"
    script:
        "../scripts/table3.py"
