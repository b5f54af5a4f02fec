# Configuration validation and the helpers every stage uses. Pure functions of the config: no I/O but
# the early check that the configured input files exist.
from snakemake.utils import validate

from l1refit.datasets import (
    check_datasets,
    file_datasets,
    resolve_paths,
    synthetic_datasets,
)
from l1refit.errors import ConfigError

validate(config, schema="../schemas/config.schema.yaml")

FILE_DATASETS = file_datasets(config["datasets"])
SYNTHETIC_DATASETS = synthetic_datasets(config["datasets"])

# Check meaning and resolve every user input now, so a foreign key, a missing file or an empty glob
# stops the run before any job starts.
try:
    check_datasets(config["datasets"])
    INPUT_FILES = {
        name: resolve_paths(name, spec["paths"]) for name, spec in FILE_DATASETS.items()
    }
except ConfigError as err:
    raise WorkflowError(f"configuration error: {err}") from None


def dataset_local_files(wildcards):
    """Local input files of a file dataset (remote URLs are passed through params, not tracked as inputs)."""
    return [p for p in INPUT_FILES[wildcards.dataset] if "://" not in p]


def dataset_all_paths(wildcards):
    """Every input of a file dataset, local files and URLs, in configured order."""
    return INPUT_FILES[wildcards.dataset]


def dataset_format(wildcards):
    return config["datasets"][wildcards.dataset]["format"]


def dataset_l1_tree(wildcards):
    """The L1 muon tree of an l1ntuple dataset ('' = the reader's default, the unpacked muons)."""
    return config["datasets"][wildcards.dataset].get("l1_tree", "")


def synthetic_ntuples(dataset):
    """The generated files of a synthetic dataset, one per configured part."""
    spec = SYNTHETIC_DATASETS[dataset]
    return expand(
        "results/ntuples/{dataset}/{part}.root",
        dataset=dataset,
        part=range(spec["files"]),
    )


def synthetic_spec(wildcards):
    """Population, size and seeds of one generated file (every number that changes it)."""
    spec = SYNTHETIC_DATASETS[wildcards.dataset]
    return {
        "population": spec["population"],
        "events": spec["events_per_file"],
        "seed": spec["seed"],
        "part": int(wildcards.part),
    }


def dataset_parts(dataset):
    """Number of input files (parts) of a dataset: configured for synthetic ones, resolved for file ones."""
    spec = config["datasets"][dataset]
    if spec["source"] == "synthetic":
        return spec["files"]
    return len(INPUT_FILES[dataset])


def part_index(wildcards):
    return int(wildcards.part)


def skim_source(wildcards):
    """The input of one skim job: a generated ntuple, or the part-th configured file (a URL stays a string)."""
    if wildcards.dataset in SYNTHETIC_DATASETS:
        return f"results/ntuples/{wildcards.dataset}/{wildcards.part}.root"
    return INPUT_FILES[wildcards.dataset][int(wildcards.part)]


def skim_input(wildcards):
    """Tracked input of a skim job: the local file (remote URLs are passed through params only)."""
    source = skim_source(wildcards)
    return [] if "://" in source else source


def skim_format(wildcards):
    """Generated datasets are L1Ntuples; file datasets say their format."""
    if wildcards.dataset in SYNTHETIC_DATASETS:
        return "l1ntuple"
    return dataset_format(wildcards)


def skim_l1_tree(wildcards):
    if wildcards.dataset in SYNTHETIC_DATASETS:
        return ""
    return dataset_l1_tree(wildcards)


def skim_parts(kind):
    """Input function: every part's skim (kind 'parquet') or cutflow (kind 'cutflow.csv') of a dataset."""

    def parts(wildcards):
        return expand(
            "results/skims/{dataset}/{part}.{kind}",
            dataset=wildcards.dataset,
            part=range(dataset_parts(wildcards.dataset)),
            kind=kind,
        )

    return parts


MODELS = config.get("models", {})
TRAINING = config["training"]
FOLDS = list(range(TRAINING["folds"]))
BASELINES = TRAINING["baselines"]
TRAINING_SKIM = f"results/skims/{TRAINING['dataset']}.parquet"
# Table 2's windows only: a figure setting under metrics must not rerun the tables.
METRIC_WINDOWS = {key: config["metrics"][key] for key in ("core", "tail")}


def check_training_config():
    """The training dataset and the analysis model must exist once models are configured."""
    if not MODELS:
        return
    if TRAINING["dataset"] not in config["datasets"]:
        raise WorkflowError(
            f"configuration error: training.dataset {TRAINING['dataset']!r} is not a configured dataset "
            f"(datasets: {', '.join(config['datasets'])})"
        )
    if config["analysis_model"] not in MODELS:
        raise WorkflowError(
            f"configuration error: analysis_model {config['analysis_model']!r} is not a configured model "
            f"(models: {', '.join(MODELS)})"
        )


check_training_config()


def model_spec(wildcards):
    """The Table-1 entry of one model plus the hidden layers: every number that changes its training."""
    return {"id": wildcards.model, **MODELS[wildcards.model]}


def fold_index(wildcards):
    return int(wildcards.fold)


ANALYSIS_MODEL = config["analysis_model"]
ANALYSIS_PREDICTIONS = expand(
    "results/predictions/{model}/fold{fold}.parquet", model=ANALYSIS_MODEL, fold=FOLDS
)
MASS_DATASET = config["plots"]["mass_dataset"]


def check_plots_config():
    if MODELS and MASS_DATASET is not None and MASS_DATASET not in config["datasets"]:
        raise WorkflowError(
            f"configuration error: plots.mass_dataset {MASS_DATASET!r} is not a configured dataset "
            f"(datasets: {', '.join(config['datasets'])}); set it to null for no mass plots"
        )


check_plots_config()


def all_cores(wildcards):
    """Every core of the run, for jobs that must run alone (benchmarks); 1 where no core count exists (--report)."""
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def is_synthetic(dataset):
    """Synthetic datasets get the "CMS Simulation" label on their figures."""
    return dataset in SYNTHETIC_DATASETS


def training_outputs():
    """Everything the training and analysis stages deliver (empty without models)."""
    if not MODELS:
        return []
    targets = [
        "results/tables/table1.csv",
        "results/tables/table2.csv",
        *expand("results/models/{model}/final/model.pt", model=MODELS),
        f"results/onnx/{ANALYSIS_MODEL}.onnx",
        "results/tables/table3.csv",
        "results/plots/fig2_residuals.png",
        "results/plots/turn_on.png",
    ]
    if MASS_DATASET is not None:
        targets += ["results/plots/fig3_mass.png", "results/tables/resonances.csv"]
    return targets


def final_outputs():
    """Targets of the all rule; each stage adds its deliverables here."""
    targets = expand("results/inspect/{dataset}.json", dataset=FILE_DATASETS)
    targets += expand(
        ["results/skims/{dataset}.parquet", "results/tables/cutflow_{dataset}.csv"],
        dataset=config["datasets"],
    )
    for dataset in SYNTHETIC_DATASETS:
        targets += synthetic_ntuples(dataset)
    if SYNTHETIC_DATASETS:
        targets.append("results/tables/generator_calibration.csv")
    return targets + training_outputs()
