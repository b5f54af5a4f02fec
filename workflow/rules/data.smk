# Data stage: what the inputs are. For user files (source: files), an inventory of every input file
# (format, era, events/orbits, muon counts) so a wrong format fails here, with the file named, and not
# deep inside a later job.


rule inspect_dataset:
    input:
        dataset_local_files,
    output:
        "results/inspect/{dataset}.json",
    log:
        "logs/inspect/{dataset}.log",
    conda:
        "../../envs/l1refit.yaml"
    params:
        paths=dataset_all_paths,
        format=dataset_format,
        chunk_bytes=config["io"]["chunk_bytes"],
        l1_tree=dataset_l1_tree,
    message:
        "Inventory of the {wildcards.dataset} input files"
    script:
        "../scripts/inspect_dataset.py"


rule generate:
    output:
        "results/ntuples/{dataset}/{part}.root",
    log:
        "logs/generate/{dataset}/{part}.log",
    benchmark:
        "logs/benchmarks/generate/{dataset}/{part}.tsv"
    conda:
        "../../envs/l1refit.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    params:
        spec=synthetic_spec,
        generator=config["generator"],
    message:
        "Synthetic {wildcards.dataset} file {wildcards.part} (L1Ntuple layout)"
    script:
        "../scripts/generate.py"


rule generator_calibration:
    output:
        report(
            "results/tables/generator_calibration.csv",
            caption="../report/generator_calibration.rst",
            category="Tables",
        ),
    log:
        "logs/generator_calibration.log",
    benchmark:
        "logs/benchmarks/generator_calibration.tsv"
    conda:
        "../../envs/l1refit.yaml"
    threads: 1
    resources:
        mem_mb=6000,
    params:
        generator=config["generator"],
        calibration=config["calibration"],
        metrics=METRIC_WINDOWS,
    message:
        "Synthetic GMT metrics beside the paper's GMT row, and the Bayes-optimal limit"
    script:
        "../scripts/generator_calibration.py"
