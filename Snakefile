# l1refit: re-fit CMS Level-1 trigger muons with small neural networks.
# Thin entry point: the embedded default config, then workflow/rules/common.smk (scenario overlays, validation,
# output paths, input functions), one .smk per stage. Every computation is in the l1refit package (src/l1refit);
# each rule's script calls one function of l1refit.stages.
from snakemake.utils import min_version

min_version("9.27")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# Wildcards take only configured values, so a typo in a target is "no rule to produce", not a wrong job.
wildcard_constraints:
    dataset="|".join(config["datasets"]),
    part=r"\d+",
    model="|".join(TRAINABLE) or "(?!)",
    fold="|".join(str(k) for k in FOLDS),
    split="|".join(SPLITS),
    baseline="|".join(BASELINES) or "(?!)",


include: "workflow/rules/data.smk"
include: "workflow/rules/skim.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/fpga.smk"
include: "workflow/rules/mass.smk"
include: "workflow/rules/fakeid.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
    localrule: True
