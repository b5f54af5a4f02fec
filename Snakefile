# l1refit: re-fit CMS Level-1 trigger muons with small neural networks.
# Thin entry point: configuration, validation and helpers live in workflow/rules/common.smk,
# one .smk per stage; every computation is in the l1refit package (src/l1refit).
from snakemake.utils import min_version

min_version("9.27")


# The embedded default; a --configfile given on the command line replaces it whole (scenario configs are
# complete), instead of being merged key by key into the default datasets.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# Wildcards take only configured values, so a typo in a target is "no rule to produce", not a wrong job.
wildcard_constraints:
    dataset="|".join(config["datasets"]),
    part=r"\d+",
    model="|".join(config.get("models", {})) or "(?!)",
    fold="|".join(str(k) for k in range(config["training"]["folds"])),
    baseline="lut|gbdt",


include: "workflow/rules/data.smk"
include: "workflow/rules/skim.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/benchmark.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
    localrule: True
