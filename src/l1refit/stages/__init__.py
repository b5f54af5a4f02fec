"""The functions the workflow's rules call, one module per ``workflow/rules/*.smk`` (see README "How data flows").

Each stage function takes the rule's named inputs, outputs and params as keyword arguments (paths and plain
values), does one job and writes its declared outputs atomically; :func:`l1refit.stages.runner.run` connects it
to Snakemake. They are usable from a notebook without Snakemake.
"""
