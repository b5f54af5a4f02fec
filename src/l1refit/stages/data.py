"""Data stage (workflow/rules/data.smk): inventory of user files, synthetic files, the generator calibration."""

from __future__ import annotations

from l1refit.analysis.metrics import Windows
from l1refit.analysis.propagation import write_propagation_table
from l1refit.formats.inventory import write_inventory
from l1refit.simulate.calibration import write_calibration_table
from l1refit.simulate.events import generate_file
from l1refit.skim.propagate import Propagator
from l1refit.skim.selection import Selection


def inspect_dataset(*, paths: list[str], format: str, chunk_bytes: int, l1_tree: str, inventory: str) -> None:
    """Summarise every input file of a file dataset (format, era, counts) into ``inventory`` (JSON)."""
    write_inventory(paths, format, inventory, chunk_bytes=chunk_bytes, l1_tree=l1_tree)


def generate(*, spec: dict, generator: dict, ntuple: str) -> None:
    """One synthetic file; ``spec`` holds population, events, seed, part and (if not l1ntuple) the layout."""
    generate_file(
        ntuple, spec["population"], spec["events"], seed=spec["seed"], part=spec["part"], gen=generator,
        layout=spec.get("layout", "l1ntuple"),
    )  # fmt: skip


def generator_calibration(*, generator: dict, calibration: dict, metrics: dict, selection: dict, table: str) -> None:
    """The synthetic GMT metrics beside the paper's GMT row, and the Bayes-optimal limit, on the skim's selection."""
    write_calibration_table(
        table,
        generator,
        n=calibration["muons"],
        seed=calibration["seed"],
        n_bayes=calibration["bayes_muons"],
        bayes_seed=calibration["bayes_seed"],
        windows=Windows.from_config(metrics),
        selection=selection,
    )


def propagation_accuracy(*, generator: dict, selection: dict, check: dict, table: str) -> None:
    """Propagated against true station-2 positions of synthetic ZeroBias muons, and the matching with each."""
    sel = Selection.from_config(selection)
    prop = Propagator.from_config(sel.propagation)
    write_propagation_table(table, check["events"], check["seed"], generator, sel, prop)
