"""The fake classifier on the FPGA: its fixed-point design, the cut the board applies, bit-exact emulation.

The board sees what the classifier reads (:data:`l1refit.ml.fakeid.FAKE_FEATURES`) as integers: the muon's uGMT
values (φ and η at the vertex, pT, charge, quality) and the neighbour features, which a neighbour stage beside the
network computes from the other selected muons of the BX exactly as :mod:`l1refit.skim.neighbours` does (integer
differences and a minimum; that stage is not part of this design, its reference is that module). The classifier's
standardisation is folded into the first dense layer, as the regression's min-max scaling is (firmware.py), so the
design is Dense → ReLU → … → Dense on the raw integers, and it ends at the **logit**: a cut on the fake probability
is a cut on the logit, one comparator against a constant (``FakeDesign.cuts``), and the sigmoid is never built. The
fake probability of an emulated design (``refit --fakeid design.json``) is the sigmoid of its logit, computed in
software (docs/deploy.md §6.8).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from l1refit.deploy.fpga.design import DenseNetwork, Layer, build_layers
from l1refit.deploy.fpga.emulate import emulate_mantissas
from l1refit.deploy.fpga.fixed import Precision

if TYPE_CHECKING:
    from l1refit.ml.fakeid import FakeClassifier

FAKEID_DESIGN_FORMAT = "l1refit-fpga-fakeid/1"
FLOAT = "float"  # the scan's reference row: the float network
N_L1_BX_MAX = 15  # n_l1_bx saturates in its 4-bit input (a BX has at most 8 uGMT output muons)


def fakeid_dense_layers(classifier: FakeClassifier) -> list[tuple[str, np.ndarray, np.ndarray, bool]]:
    """``(name, weight (out, in), bias, followed by a ReLU)`` per dense layer of the classifier on the raw features,
    in float64: the standardisation (x − offset) / scale folded into the first layer, the last one giving the logit."""
    from torch import nn

    module = classifier.module
    offset, scale = (getattr(module, name).detach().double().numpy() for name in ("offset", "scale"))
    children = list(module.mlp.children())
    dense = [(layer, index + 1 < len(children) and isinstance(children[index + 1], nn.ReLU))
             for index, layer in enumerate(children) if isinstance(layer, nn.Linear)]  # fmt: skip
    layers = []
    for number, (layer, relu) in enumerate(dense, start=1):
        weight = layer.weight.detach().double().numpy().copy()
        bias = layer.bias.detach().double().numpy().copy()
        if number == 1:  # W·((x − o)/s) + b = (W/s)·x + (b − W·(o/s))
            bias = bias - weight @ (offset / scale)
            weight = weight / scale
        layers.append((f"dense{number}", weight, bias, relu))
    return layers


def float_logits(dense_layers, x: np.ndarray) -> np.ndarray:
    """The folded float64 network (:func:`fakeid_dense_layers`) on raw features ``x`` (N, n): the logits (N,)."""
    x = np.asarray(x, dtype=np.float64)
    for _, weight, bias, relu in dense_layers:
        x = x @ weight.T + bias
        if relu:
            x = np.maximum(x, 0.0)
    return x[:, 0]


def saturated(x: np.ndarray, inputs) -> np.ndarray:
    """A feature matrix (N, n) in the order of ``inputs`` as the design's input integers, float64: ``n_l1_bx``
    saturated at :data:`N_L1_BX_MAX`, the rest as they are (their range is checked by the emulator)."""
    x = np.array(x, dtype=np.float64)
    if "n_l1_bx" in inputs:
        column = list(inputs).index("n_l1_bx")
        np.minimum(x[:, column], N_L1_BX_MAX, out=x[:, column])
    return x


def firmware_features(rows: Mapping[str, np.ndarray], inputs) -> np.ndarray:
    """The design's input integers (N, n) float64 from the columns of ``rows`` (:func:`saturated`)."""
    return saturated(np.column_stack([np.asarray(rows[name], dtype=np.float64) for name in inputs]), inputs)


def sigmoid(logit: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−x) without overflow warnings for large |x|."""
    logit = np.asarray(logit, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * logit))


@dataclass
class FakeDesign(DenseNetwork):
    """The fake classifier as a fixed-point network on the integers ``inputs``; one output, the logit.

    ``selection`` is the L1 selection of the candidates it was trained on (the refit applies it before the neighbour
    features, as for the ONNX graph); ``cuts`` maps a real-muon efficiency (as text, e.g. "0.98") to the fake
    probability threshold of that working point, which the board applies as ``logit mantissa > cut_mantissa``.
    """

    layers: list[Layer]
    inputs: tuple[str, ...]
    precision: str
    selection: dict = field(default_factory=dict)
    cuts: dict[str, float] = field(default_factory=dict)
    model_id: str = "fakeid"
    required_inputs: ClassVar[tuple[str, ...]] = ()

    def logits(self, hw) -> np.ndarray:
        """The emulated board's logit (N,), float64, for the integers ``hw`` (N, n_inputs); bit-exact."""
        return self.output_type.to_float(emulate_mantissas(self, hw))[:, 0]

    def probability(self, hw) -> np.ndarray:
        """The fake probability of the emulated board's logit (the sigmoid, in software)."""
        return sigmoid(self.logits(hw))

    def cut_mantissa(self, threshold: float) -> int:
        """The comparator constant of a probability cut: fake ⇔ logit mantissa > this, i.e. logit > logit(threshold)
        (exactly, for an integer mantissa: its floor in output LSBs), saturated into the output type."""
        low, high = self.output_type.bounds
        if threshold <= 0.0:
            return low - 1
        if threshold >= 1.0:
            return high
        logit = math.log(threshold / (1.0 - threshold))
        return int(min(max(math.floor(math.ldexp(logit, self.output_type.frac)), low - 1), high))

    def is_fake(self, hw, efficiency: float | str) -> np.ndarray:
        """What the board decides at the working point ``efficiency`` (a key of ``cuts``): bool (N,)."""
        key = _cut_key(efficiency)
        if key not in self.cuts:
            raise KeyError(f"no working point {key} in the design (has {', '.join(self.cuts) or 'none'})")
        return emulate_mantissas(self, hw)[:, 0] > self.cut_mantissa(self.cuts[key])

    def to_dict(self) -> dict:
        return {
            "format": FAKEID_DESIGN_FORMAT, "model_id": self.model_id, "precision": self.precision,
            "inputs": list(self.inputs), "input_types": [str(k) for k in self.input_types],
            "input_type": str(self.input_type), "output": "fake logit", "selection": self.selection,
            "cuts": {key: {"fake_prob": value, "logit_mantissa": self.cut_mantissa(value)}
                     for key, value in self.cuts.items()},
            "layers": [layer.to_dict() for layer in self.layers],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict, source: str = "design") -> FakeDesign:
        if data.get("format") != FAKEID_DESIGN_FORMAT:
            raise ValueError(f"{source}: not a fake-ID FPGA design ({FAKEID_DESIGN_FORMAT!r}), "
                             f"format {data.get('format')!r}")  # fmt: skip
        layers = [Layer.from_dict(layer) for layer in data["layers"]]
        cuts = {key: float(value["fake_prob"]) for key, value in data.get("cuts", {}).items()}
        return cls(layers, tuple(data["inputs"]), data["precision"], dict(data.get("selection", {})), cuts,
                   data.get("model_id", "fakeid"))  # fmt: skip


def _cut_key(efficiency: float | str) -> str:
    return f"{float(efficiency):g}"


def build_fakeid_design(classifier: FakeClassifier, precision: Precision | str, *, selection: dict | None = None,
                        cuts: Mapping[float, float] | None = None) -> FakeDesign:  # fmt: skip
    """Quantise the classifier (:func:`fakeid_dense_layers`) to ``precision``; ``cuts``: {efficiency: threshold}."""
    if isinstance(precision, str):
        precision = Precision.from_string(precision)
    layers = build_layers(fakeid_dense_layers(classifier), precision)
    if layers[-1].weight.shape[0] != 1:
        raise ValueError(f"a fake classifier has one output (the logit), this one {layers[-1].weight.shape[0]}")
    design = FakeDesign(layers, tuple(classifier.features), str(precision), dict(selection or {}),
                        {_cut_key(e): float(t) for e, t in (cuts or {}).items()})  # fmt: skip
    design.input_types  # noqa: B018  every input has a hardware type (a ValueError naming it otherwise)
    return design


# ---------------------------------------------------------------------------------------------------------------
# the precision scan


def fakeid_precision_scan(folds, precisions, *, efficiencies, auc_tolerance: float, rejection_tolerance: float,
                          resources=None):  # fmt: skip
    """What every fixed-point design of the classifier costs: out-of-fold AUC and fake rejection at the working
    points, float network (``precision`` "float") and emulated designs, per fold and as the mean over folds.

    ``folds``: ``(classifier, test rows)`` per fold, the rows with the features and ``is_fake``; ``resources``
    (optional): ``design → {luts_estimate, ffs_estimate, stages, …}``, called on fold 0's design. Returns
    ``(per_fold, summary)``: ``summary`` has one row per precision with the mean and standard deviation of every
    metric, ``auc_loss`` (float AUC − design AUC, mean over folds), ``rejection_loss`` (the largest loss of fake
    rejection over the working points), the resources, and ``chosen``: the design with the fewest estimated LUTs (the
    narrowest, without estimates) whose ``auc_loss`` ≤ ``auc_tolerance`` and ``rejection_loss`` ≤
    ``rejection_tolerance``. Both count: a coarse design can even gain AUC (its tied scores share midranks) while it
    loses rejection at a working point.
    """
    import pandas as pd

    from l1refit.analysis.fakeid import fakeid_metrics, fakeid_table
    from l1refit.ml.fakeid import labels

    rows = []
    designs: dict[str, FakeDesign] = {}
    for fold, (classifier, test) in enumerate(folds):
        is_fake = labels(test)
        rows.append({"method": FLOAT, "fold": fold, **fakeid_metrics(is_fake, classifier.predict_proba(test),
                                                                      efficiencies)})  # fmt: skip
        hw = firmware_features(test, classifier.features)
        for precision in precisions:
            design = build_fakeid_design(classifier, precision)
            designs.setdefault(precision, design)
            rows.append({"method": precision, "fold": fold,
                         **fakeid_metrics(is_fake, design.probability(hw), efficiencies)})  # fmt: skip
    table = fakeid_table(rows).rename(columns={"method": "precision"})
    per_fold = table[table["fold"] != "mean"].reset_index(drop=True)
    summary = table[table["fold"] == "mean"].drop(columns="fold").reset_index(drop=True)
    reference = summary[summary["precision"] == FLOAT].iloc[0]
    summary["auc_loss"] = reference["auc"] - summary["auc"]
    rejections = [column for column in summary.columns if column.startswith("rejection_at_") and "std" not in column]
    summary["rejection_loss"] = (reference[rejections] - summary[rejections]).astype(float).max(axis=1)
    if resources is not None:
        estimates = [resources(designs[p]) if p in designs else {} for p in summary["precision"]]
        summary = pd.concat([summary, pd.DataFrame(estimates)], axis=1)
    within = (summary["auc_loss"] <= auc_tolerance) & (summary["rejection_loss"] <= rejection_tolerance)
    candidates = summary[(summary["precision"] != FLOAT) & within]
    summary["chosen"] = False
    if len(candidates):
        order = candidates["luts_estimate"] if "luts_estimate" in candidates else candidates["precision"].map(
            lambda p: Precision.from_string(p).width)  # fmt: skip
        summary.loc[order.astype(float).idxmin(), "chosen"] = True
    return per_fold, summary


def chosen_precision(summary) -> str:
    """The scan's chosen precision, else (none within the tolerance) its last, widest, one."""
    chosen = summary[summary["chosen"].astype(bool)]
    if len(chosen):
        return str(chosen["precision"].iloc[0])
    return str(summary.loc[summary["precision"] != FLOAT, "precision"].iloc[-1])
