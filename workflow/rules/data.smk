# Data stage: what the inputs are. For user files (source: files), an inventory of every input file
# (format, era, events/orbits, muon counts) so a wrong format fails here, with the file named, and not
# deep inside a later job.


# Between-workflow caching (--cache, cache directory in $SNAKEMAKE_OUTPUT_CACHE) of the costly stages: generate,
# skim, train and train_final (merge is cheap, and its output would be a second copy of the skims in the cache).
# Snakemake keys a cached result by the rule's script, its params, the checksums of input files that no job
# makes, the keys of all upstream jobs and, under --sdm conda, the conda environment: every setting that changes
# a result reaches these rules through params or input files. The key does not cover the l1refit package itself
# (installed, not a rule's code): after changing the package, use a fresh cache directory.
# Snakemake refuses a rule that is both cacheable and benchmarked (a restored result has no timing), and the
# benchmarks are the resource figures of ordinary runs; so each of these rules is written twice, the cached
# variant for runs that cache it and the benchmarked one otherwise, identical but for those two directives
# (tests/test_cache.py checks that they stay so).
CACHEABLE = {"generate", "skim", "train", "train_final"}
# The rules this run caches: --cache naming no rule means every cacheable one; without a cache directory
# Snakemake caches nothing (it warns), and the benchmarked variants run.
if not (workflow.enable_cache and os.environ.get("SNAKEMAKE_OUTPUT_CACHE")):
    CACHED = set()
elif workflow.workflow_settings.cache:
    CACHED = CACHEABLE & set(workflow.workflow_settings.cache)
else:
    CACHED = CACHEABLE


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


if "generate" in CACHED:

    rule generate:
        output:
            "results/ntuples/{dataset}/{part}.root",
        log:
            "logs/generate/{dataset}/{part}.log",
        cache: True
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

else:

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
