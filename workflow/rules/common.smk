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


def final_outputs():
    """Targets of the all rule; each stage adds its deliverables here."""
    return expand("results/inspect/{dataset}.json", dataset=FILE_DATASETS)
