# Export stage: each model's final network as a deployable ONNX graph (raw hardware integers in, corrected phi,
# eta, pT out), checked against PyTorch on real skim rows before it is kept.


rule export_onnx:
    input:
        model=trained("model.pt", "final"),
        skim=TRAINING_SKIM,
    output:
        onnx=PATHS["onnx"],
    log:
        "logs/export/{model}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        model_id=lambda wildcards: wildcards.model,
    message:
        "Export model {wildcards.model} to ONNX and check it against PyTorch"
    script:
        "../scripts/export_onnx.py"
