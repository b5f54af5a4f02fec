# Configuration, output paths and input functions every stage uses. Pure functions of the config: no I/O but
# the early check that the configured input files exist.
import sys

from l1refit.config.datasets import (
    check_datasets,
    check_training_dataset,
    dataset_format as configured_format,
    file_datasets,
    resolve_paths,
    synthetic_datasets,
)
from l1refit.config.loading import compose, read_yaml, validate
from l1refit.errors import ConfigError
from l1refit.formats.registry import L1_ONLY_FORMATS
from l1refit.ml.search import cost as search_cost, search_points

# Scenario configs (--configfile) are overlays on the embedded default: sections merge key by key, except
# datasets and models, which an overlay replaces whole. Then the schema fills every default and checks every key;
# an error is one line naming the key, the value and the rule, before any job runs.
try:
    config.update(
        validate(
            compose(config, workflow.config_settings.overwrite_config),
            source=" ".join(map(str, workflow.overwrite_configfiles)) or "config",
        )
    )
    FILE_DATASETS = file_datasets(config["datasets"])
    SYNTHETIC_DATASETS = synthetic_datasets(config["datasets"])
    # Check meaning and resolve every user input now, so a foreign key, a missing file or an empty glob
    # stops the run before any job starts.
    check_datasets(config["datasets"])
    INPUT_FILES = {
        name: resolve_paths(name, spec["paths"]) for name, spec in FILE_DATASETS.items()
    }
except ConfigError as err:
    raise WorkflowError(f"configuration error: {err}") from None

MODELS = config.get("models") or {}
TRAINING = config["training"]
FOLDS = list(range(TRAINING["folds"]))
# The hyperparameter search's points (id -> models entry; configured models among them keep their ids): trained
# per fold like the Table-1 models, ranked in search.csv; they are not Table-1 rows and get no final training.
try:
    SEARCH = search_points(config.get("search"), MODELS)
except ValueError as err:
    raise WorkflowError(f"configuration error: {err}") from None
if SEARCH and not MODELS:
    raise WorkflowError(
        "configuration error: search needs the models section (its analysis model runs the rest of the workflow)"
    )
if SEARCH:
    print(search_cost(config["search"], MODELS, len(FOLDS)), file=sys.stderr)
TRAINABLE = MODELS | SEARCH
SPLITS = [f"fold{fold}" for fold in FOLDS] + ["final"]
BASELINES = TRAINING["baselines"]
ANALYSIS_MODEL = config["analysis_model"]
MASS_DATASET = config["plots"]["mass_dataset"]
# Table 2's windows only: a figure setting under metrics must not rerun the tables.
METRIC_WINDOWS = {key: config["metrics"][key] for key in ("core", "tail")}
ENV = "../../envs/l1refit.yaml"

# Every output path of the workflow, in one place (the output contract of DESIGN/README).
PATHS = {
    "inventory": "results/inspect/{dataset}.json",
    "ntuple": "results/ntuples/{dataset}/{part}.root",
    "skim_part": "results/skims/{dataset}/{part}.parquet",
    "cutflow_part": "results/skims/{dataset}/{part}.cutflow.csv",
    "skim": "results/skims/{dataset}.parquet",
    "candidates_part": "results/skims/{dataset}/{part}.candidates.parquet",
    "candidates": "results/skims/{dataset}.candidates.parquet",
    "cutflow": "results/tables/cutflow_{dataset}.csv",
    "calibration": "results/tables/generator_calibration.csv",
    "propagation": "results/tables/propagation_accuracy.csv",
    "predictions": "results/predictions/{model}/fold{fold}.parquet",
    "baseline": "results/predictions/baselines/{baseline}/fold{fold}.parquet",
    "dataset_predictions": "results/predictions/{model}/final/{dataset}.parquet",
    "table1": "results/tables/table1",
    "table2": "results/tables/table2",
    "table3": "results/tables/table3.csv",
    "int8_metrics": "results/tables/int8_metrics.csv",
    "resonances": "results/tables/resonances.csv",
    "turn_on_table": "results/tables/turn_on.csv",
    "fig2": "results/plots/fig2_residuals",
    "fig3": "results/plots/fig3_mass",
    "resonance_plot": "results/plots/resonances",
    "turn_on_plot": "results/plots/turn_on",
    "throughput": "results/plots/throughput.png",
    "onnx": "results/onnx/{model}.onnx",
    "fpga_precision": "results/tables/fpga_precision.csv",
    "table3_fpga": "results/tables/table3_fpga.csv",
    "fpga_hls": "results/fpga/{model}/hls",
    "fpga_rtl": "results/fpga/{model}/rtl",
    "fpga_design": "results/fpga/{model}/design.json",
    "fpga_predictions": "results/predictions/{model}/fpga/{dataset}.parquet",
    "fpga_oof": "results/predictions/{model}/fpga/oof/fold{fold}.parquet",
    "fpga_rtl_sim": "results/fpga/{model}/rtl_simulation.json",
    "qat_design": "results/fpga/{model}/qat/{split}/design.json",
    "qat_history": "results/fpga/{model}/qat/{split}/history.csv",
    "qat_predictions": "results/predictions/{model}/qat/fold{fold}.parquet",
    "reweighted_model": "results/models/{model}/reweighted/{file}",
    "reweighted_predictions": "results/predictions/{model}/reweighted/{dataset}.parquet",
    "limit_predictions": "results/predictions/limit/{dataset}.parquet",
    "table2_mass": "results/tables/table2_{dataset}",
    "search": "results/tables/search.csv",
    "search_plot": "results/plots/search",
    "fakeid_model": "results/models/fakeid/{split}/model.pt",
    "fakeid_history": "results/models/fakeid/{split}/history.csv",
    "fakeid_oof": "results/predictions/fakeid/oof.parquet",
    "fakeid_onnx": "results/onnx/fakeid.onnx",
    "combined_onnx": "results/onnx/{model}_fakeid.onnx",
    "fakeid_table": "results/tables/fakeid.csv",
    "fakeid_working_points": "results/tables/fakeid_working_points.csv",
    "fakeid_roc": "results/plots/fakeid_roc",
    "fakeid_mass_table": "results/tables/resonances_fakeid.csv",
    "fakeid_mass_plot": "results/plots/fig3_fakeid",
    "fakeid_fpga": "results/tables/fakeid_fpga.csv",
    "fakeid_fpga_folds": "results/tables/fakeid_fpga_folds.csv",
    "fakeid_design": "results/fpga/fakeid/design.json",
    "fakeid_hls": "results/fpga/fakeid/hls",
    "fakeid_rtl": "results/fpga/fakeid/rtl",
}
QAT = config["fpga"]["enabled"] and config["fpga"]["qat"]["enabled"]
# The mass dataset's own offline muons: its limit, its Table 2 and the reweighted network need them.
MASS_OFFLINE = (
    MASS_DATASET in config["datasets"]
    and configured_format(config["datasets"][MASS_DATASET]) not in L1_ONLY_FORMATS
)
REWEIGHT = MASS_OFFLINE and config["reweight"]["enabled"]
QAT_NAME = f"{ANALYSIS_MODEL}-QAT"
TRAINING_SKIM = PATHS["skim"].format(dataset=TRAINING["dataset"])
TRAINING_CANDIDATES = PATHS["candidates"].format(dataset=TRAINING["dataset"])
# Fake identification is part of the training (no models: no training) and needs the training dataset's offline
# muons (its labels).
FAKEID = (
    config["fakeid"]["enabled"]
    and bool(MODELS)
    and TRAINING["dataset"] in config["datasets"]
    and configured_format(config["datasets"][TRAINING["dataset"]])
    not in L1_ONLY_FORMATS
)
# ... and its firmware when the FPGA stage runs.
FAKEID_FPGA = FAKEID and config["fpga"]["enabled"]
# The classifier's settings without its firmware's: a firmware setting reruns no training or evaluation.
FAKEID_SETTINGS = {k: v for k, v in config["fakeid"].items() if k != "fpga"}
FAKEID_TRAINING = {
    key: TRAINING[key] for key in ("dataset", "folds", "seed", "validation_fraction")
}
ANALYSIS_PREDICTIONS = expand(PATHS["predictions"], model=ANALYSIS_MODEL, fold=FOLDS)


def check_references():
    """Names that point at other sections (training dataset, analysis model, mass dataset) must exist."""
    datasets = ", ".join(config["datasets"])
    if not MODELS:
        return
    if TRAINING["dataset"] not in config["datasets"]:
        raise WorkflowError(
            f"configuration error: training.dataset {TRAINING['dataset']!r} is not a configured dataset "
            f"(datasets: {datasets})"
        )
    try:
        check_training_dataset(config["datasets"], TRAINING["dataset"])
    except ConfigError as err:
        raise WorkflowError(f"configuration error: {err}") from None
    if ANALYSIS_MODEL not in MODELS:
        raise WorkflowError(
            f"configuration error: analysis_model {ANALYSIS_MODEL!r} is not a configured model "
            f"(models: {', '.join(MODELS)})"
        )
    if MASS_DATASET is not None and MASS_DATASET not in config["datasets"]:
        raise WorkflowError(
            f"configuration error: plots.mass_dataset {MASS_DATASET!r} is not a configured dataset "
            f"(datasets: {datasets}); set it to null for no mass plots"
        )


check_references()


def trained(name, split="{split}"):
    """A file of a trained model: model.pt, history.csv or loss.png of one split (fold<k> or final)."""
    return f"results/models/{{model}}/{split}/{name}"


def figure(stem):
    """A figure's PNG (in the report, with its caption) and PDF outputs, named png and pdf."""
    return {"png": f"{stem}.png", "pdf": f"{stem}.pdf"}


def dataset_local_files(wildcards):
    """Local input files of a file dataset (remote URLs are passed through params, not tracked as inputs)."""
    return [p for p in INPUT_FILES[wildcards.dataset] if "://" not in p]


def dataset_all_paths(wildcards):
    """Every input of a file dataset, local files and URLs, in configured order."""
    return INPUT_FILES[wildcards.dataset]


def dataset_format(wildcards):
    """The format of a dataset's files (generated ones: l1ntuple unless the dataset says nanoaod)."""
    return configured_format(config["datasets"][wildcards.dataset])


def dataset_l1_tree(wildcards):
    """The L1 muon tree of an l1ntuple file dataset ('' = the reader's default, the unpacked muons)."""
    return config["datasets"][wildcards.dataset].get("l1_tree", "")


def synthetic_ntuples(dataset):
    """The generated files of a synthetic dataset, one per configured part."""
    return expand(
        PATHS["ntuple"],
        dataset=dataset,
        part=range(SYNTHETIC_DATASETS[dataset]["files"]),
    )


def synthetic_spec(wildcards):
    """Population, size and seeds of one generated file (every number that changes it)."""
    spec = SYNTHETIC_DATASETS[wildcards.dataset]
    out = {
        "population": spec["population"],
        "events": spec["events_per_file"],
        "seed": spec["seed"],
        "part": int(wildcards.part),
    }
    # only a non-default layout is a param, so files generated before the key existed stay valid
    if configured_format(spec) != "l1ntuple":
        out["layout"] = configured_format(spec)
    return out


def dataset_parts(dataset):
    """Number of input files (parts) of a dataset: configured for synthetic ones, resolved for file ones."""
    spec = config["datasets"][dataset]
    if spec["source"] == "synthetic":
        return spec["files"]
    return len(INPUT_FILES[dataset])


def skim_source(wildcards):
    """The input of one skim job: a generated ntuple, or the part-th configured file (a URL stays a string)."""
    if wildcards.dataset in SYNTHETIC_DATASETS:
        return PATHS["ntuple"].format(**wildcards)
    return INPUT_FILES[wildcards.dataset][int(wildcards.part)]


def skim_input(wildcards):
    """Tracked input of a skim job: the local file (remote URLs are passed through params only)."""
    source = skim_source(wildcards)
    return [] if "://" in source else [source]


def skim_l1_tree(wildcards):
    if wildcards.dataset in SYNTHETIC_DATASETS:
        return ""
    return dataset_l1_tree(wildcards)


def skim_parts(kind):
    """Input function: every part's skim ('skim_part'), cutflow ('cutflow_part') or candidates of a dataset."""

    def parts(wildcards):
        return expand(
            PATHS[kind],
            dataset=wildcards.dataset,
            part=range(dataset_parts(wildcards.dataset)),
        )

    return parts


def model_spec(wildcards):
    """The Table-1 (or search) entry of one model: every setting of the model that changes its training."""
    return {"id": wildcards.model, **TRAINABLE[wildcards.model]}


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
        f"{PATHS['table1']}.csv",
        f"{PATHS['table2']}.csv",
        *expand(trained("model.pt", "final"), model=MODELS),
        PATHS["onnx"].format(model=ANALYSIS_MODEL),
        PATHS["table3"],
        f"{PATHS['fig2']}.png",
        f"{PATHS['turn_on_plot']}.png",
    ]
    if MASS_DATASET is not None:
        targets += [f"{PATHS['fig3']}.png", PATHS["resonances"]]
    if MASS_OFFLINE:
        targets.append(f"{PATHS['table2_mass'].format(dataset=MASS_DATASET)}.csv")
    if SEARCH:
        targets += [PATHS["search"], f"{PATHS['search_plot']}.png"]
    if config["fpga"]["enabled"]:
        targets += [
            PATHS["fpga_precision"],
            PATHS["fpga_design"].format(model=ANALYSIS_MODEL),
            PATHS["fpga_rtl_sim"].format(model=ANALYSIS_MODEL),
            *fpga_predictions(),
        ]
    # the apply stage: the analysis model re-fits every dataset of L1 muons only (scouting data)
    targets += [
        PATHS["dataset_predictions"].format(model=ANALYSIS_MODEL, dataset=name)
        for name, spec in config["datasets"].items()
        if configured_format(spec) in L1_ONLY_FORMATS
    ]
    return targets


def fpga_scan_inputs(wildcards):
    """The analysis model's fold networks and out-of-fold predictions, and its final network with its predictions
    on the mass dataset (when there is one): what the precision scan measures."""
    inputs = {
        "fold_models": expand(
            trained("model.pt", "fold{fold}"), model=ANALYSIS_MODEL, fold=FOLDS
        ),
        "fold_predictions": expand(
            PATHS["predictions"], model=ANALYSIS_MODEL, fold=FOLDS
        ),
    }
    if MASS_DATASET is not None:
        inputs["final_model"] = trained("model.pt", "final").format(
            model=ANALYSIS_MODEL
        )
        inputs["mass_predictions"] = PATHS["dataset_predictions"].format(
            model=ANALYSIS_MODEL, dataset=MASS_DATASET
        )
    if QAT:
        inputs["qat_designs"] = expand(
            PATHS["qat_design"], model=ANALYSIS_MODEL, split=[f"fold{k}" for k in FOLDS]
        )
        if MASS_DATASET is not None:
            inputs["qat_final"] = PATHS["qat_design"].format(
                model=ANALYSIS_MODEL, split="final"
            )
    return inputs


def qat_design_input(split):
    """The quantisation-aware design of one split of the analysis model, when QAT is on (else nothing)."""

    def inputs(wildcards):
        if not QAT:
            return {}
        name = split.format(**dict(wildcards.items()))
        return {
            "qat_design": PATHS["qat_design"].format(model=ANALYSIS_MODEL, split=name)
        }

    return inputs


def table2_qat_input(wildcards):
    """The quantisation-aware designs' out-of-fold predictions: Table 2's <model>-QAT row (when QAT is on)."""
    if not QAT:
        return {}
    return {
        "qat_predictions": expand(
            PATHS["qat_predictions"], model=ANALYSIS_MODEL, fold=FOLDS
        )
    }


def fig2_firmware_input(wildcards):
    """The chosen firmware's out-of-fold predictions: Figure 2's firmware curve (FPGA stage on)."""
    if not config["fpga"]["enabled"]:
        return {}
    return {
        "firmware_predictions": expand(
            PATHS["fpga_oof"], model=ANALYSIS_MODEL, fold=FOLDS
        )
    }


def mass_network_predictions():
    """The network's predictions on the mass dataset: the reweighted network's (reweight on), else the final's."""
    path = PATHS["reweighted_predictions"] if REWEIGHT else PATHS["dataset_predictions"]
    return path.format(model=ANALYSIS_MODEL, dataset=MASS_DATASET)


def fake_prob_input(split, dataset=None):
    """Input function of a prediction rule: the fake classifier of ``split`` and the dataset's candidate table
    (the training dataset's, or the ``dataset`` wildcard's), so the predictions get ``fake_prob``; nothing when
    fake identification is off."""

    def inputs(wildcards):
        if not FAKEID:
            return {}
        name = dataset or wildcards.dataset
        return {
            "candidates": PATHS["candidates"].format(dataset=name),
            "classifier": PATHS["fakeid_model"].format(
                split=split.format(**dict(wildcards.items()))
            ),
        }

    return inputs


def mass_network():
    """The network that corrects the mass dataset: the reweighted one (reweight on), else the final one."""
    if REWEIGHT:
        return PATHS["reweighted_model"].format(model=ANALYSIS_MODEL, file="model.pt")
    return trained("model.pt", "final").format(model=ANALYSIS_MODEL)


def mass_sources():
    """{name: predictions on the mass dataset} of every source beside GMT: the networks, the firmware, the limit."""
    final = PATHS["dataset_predictions"].format(
        model=ANALYSIS_MODEL, dataset=MASS_DATASET
    )
    out = {ANALYSIS_MODEL: final}
    if REWEIGHT:
        out[f"{ANALYSIS_MODEL} reweighted"] = PATHS["reweighted_predictions"].format(
            model=ANALYSIS_MODEL, dataset=MASS_DATASET
        )
    if config["fpga"]["enabled"]:
        out["FPGA"] = PATHS["fpga_predictions"].format(
            model=ANALYSIS_MODEL, dataset=MASS_DATASET
        )
    if MASS_OFFLINE:
        out["limit"] = PATHS["limit_predictions"].format(dataset=MASS_DATASET)
    return out


def dimuon_extra_input(wildcards):
    """Beside the network: the firmware (FPGA stage on), the unweighted network (when the reweighted one is the
    NN) and the limit (when the mass dataset has offline muons), each a source of Figure 3 and resonances.csv.
    """
    out = {}
    if config["fpga"]["enabled"]:
        out["firmware_predictions"] = PATHS["fpga_predictions"].format(
            model=ANALYSIS_MODEL, dataset=MASS_DATASET
        )
    if REWEIGHT:
        out["zerobias_predictions"] = PATHS["dataset_predictions"].format(
            model=ANALYSIS_MODEL, dataset=MASS_DATASET
        )
    if MASS_OFFLINE:
        out["limit_predictions"] = PATHS["limit_predictions"].format(
            dataset=MASS_DATASET
        )
    return out


def table3_fpga_input(wildcards):
    """The FPGA Table 3, whose chosen design's estimate joins the throughput plot (FPGA stage on)."""
    return {"fpga_table3": PATHS["table3_fpga"]} if config["fpga"]["enabled"] else {}


def fpga_predictions():
    """The emulated firmware's predictions on the training and the mass dataset."""
    datasets = dict.fromkeys(
        [TRAINING["dataset"], MASS_DATASET] if MASS_DATASET else [TRAINING["dataset"]]
    )
    return [
        PATHS["fpga_predictions"].format(model=ANALYSIS_MODEL, dataset=d)
        for d in datasets
    ]


def final_outputs():
    """Targets of the all rule; each stage adds its deliverables here."""
    targets = expand(PATHS["inventory"], dataset=FILE_DATASETS)
    targets += expand([PATHS["skim"], PATHS["cutflow"]], dataset=config["datasets"])
    for dataset in SYNTHETIC_DATASETS:
        targets += synthetic_ntuples(dataset)
    if SYNTHETIC_DATASETS:
        targets.append(PATHS["calibration"])
    if any(
        configured_format(spec) == "nanoaod" for spec in config["datasets"].values()
    ):
        targets.append(
            PATHS["propagation"]
        )  # the offline muons are propagated: how well
    if FAKEID:
        targets += [
            PATHS["fakeid_table"],
            f"{PATHS['fakeid_roc']}.png",
            PATHS["fakeid_onnx"],
            PATHS["combined_onnx"].format(model=ANALYSIS_MODEL),
            *([PATHS["fakeid_mass_table"]] if MASS_DATASET is not None else []),
            *([PATHS["fakeid_fpga"], PATHS["fakeid_design"]] if FAKEID_FPGA else []),
        ]
    return targets + training_outputs()
