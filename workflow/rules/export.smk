# Export stage: each model's final network as a deployable ONNX graph (raw hardware integers in, corrected phi,
# eta, pT out), checked against PyTorch on real skim rows before it is kept.


rule export_onnx:
    input:
        model="results/models/{model}/final/model.pt",
        skim=TRAINING_SKIM,
    output:
        "results/onnx/{model}.onnx",
    log:
        "logs/export/{model}.log",
    conda:
        "../../envs/l1refit.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    message:
        "Export model {wildcards.model} to ONNX and check it against PyTorch"
    script:
        "../scripts/export_onnx.py"
