# Data stage: what the inputs are. For user files (source: files), an inventory of every input file (format, era,
# events/orbits, muon counts), so a wrong format fails here, with the file named, and not deep inside a later job.
# For the embedded default, the synthetic detector writes L1Ntuple-layout files and measures itself against the
# paper's GMT row.
#
# Between-workflow caching (--cache with $SNAKEMAKE_OUTPUT_CACHE) covers the costly rules generate, skim and
# train. Snakemake keys a cached result by the rule's script, its params, the checksums of input files that no job
# makes and the keys of all upstream jobs: every setting that changes a result reaches these rules through params
# or input files. The key does not cover the installed l1refit package: after changing it, use a fresh cache
# directory. Snakemake refuses `benchmark:` on a cached rule; their wall time, CPU time and peak memory are
# the last line of their logs instead (l1refit.stages.runner).


rule inspect_dataset:
    input:
        dataset_local_files,
    output:
        inventory=PATHS["inventory"],
    log:
        "logs/inspect/{dataset}.log",
    conda:
        ENV
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
        ntuple=PATHS["ntuple"],
    log:
        "logs/generate/{dataset}/{part}.log",
    cache: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        spec=synthetic_spec,
        generator=config["generator"],
    message:
        "Synthetic {wildcards.dataset} file {wildcards.part}"
    script:
        "../scripts/generate.py"


rule generator_calibration:
    output:
        table=report(
            PATHS["calibration"],
            caption="../report/generator_calibration.rst",
            category="Tables",
        ),
    log:
        "logs/generator_calibration.log",
    benchmark:
        "logs/benchmarks/generator_calibration.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=6000,
    params:
        generator=config["generator"],
        calibration=config["calibration"],
        metrics=METRIC_WINDOWS,
        selection=config["selection"],
    message:
        "Synthetic GMT metrics beside the paper's GMT row, and the Bayes-optimal limit"
    script:
        "../scripts/generator_calibration.py"


rule propagation_accuracy:
    output:
        table=report(
            PATHS["propagation"],
            caption="../report/propagation_accuracy.rst",
            category="Tables",
        ),
    log:
        "logs/propagation_accuracy.log",
    benchmark:
        "logs/benchmarks/propagation_accuracy.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        generator=config["generator"],
        selection=config["selection"],
        check=config["propagation_check"],
    message:
        "Offline muons propagated to MB2 against their true positions (synthetic events)"
    script:
        "../scripts/propagation_accuracy.py"
