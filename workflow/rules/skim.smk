# Skim stage: one job per input file selects barrel L1 muons and offline muons and matches them one-to-one at
# station 2 (l1refit.skim); a merge job per dataset concatenates the parts and sums their cutflows.
# L1Ntuples give matched pairs; scouting raw files (no offline muons) give the selected L1 table.


rule skim:
    input:
        skim_input,
    output:
        parquet=PATHS["skim_part"],
        cutflow=PATHS["cutflow_part"],
        candidates=PATHS["candidates_part"],
    log:
        "logs/skim/{dataset}/{part}.log",
    cache: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        source=skim_source,
        format=dataset_format,
        l1_tree=skim_l1_tree,
        part=lambda wildcards: int(wildcards.part),
        selection=config["selection"],
        step_size=config["io"]["step_size"],
        chunk_bytes=config["io"]["chunk_bytes"],
    message:
        "Skim {wildcards.dataset} part {wildcards.part}: select and match at station 2"
    script:
        "../scripts/skim.py"


rule merge:
    input:
        parts=skim_parts("skim_part"),
        cutflows=skim_parts("cutflow_part"),
        candidate_parts=skim_parts("candidates_part"),
    output:
        parquet=PATHS["skim"],
        candidates=PATHS["candidates"],
        cutflow=report(
            PATHS["cutflow"],
            caption="../report/cutflow.rst",
            category="Tables",
            subcategory="Cut flows",
            labels={"dataset": "{dataset}"},
        ),
    log:
        "logs/skim/{dataset}.merge.log",
    benchmark:
        "logs/benchmarks/skim/{dataset}.merge.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
    message:
        "Merge the {wildcards.dataset} skims and sum their cutflows"
    script:
        "../scripts/merge_skims.py"
