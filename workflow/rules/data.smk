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
