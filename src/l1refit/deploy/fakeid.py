"""The fake classifier as a deployable ONNX graph, and its features computed from the refit's rows.

The graph (rule ``export_fakeid``, ``results/onnx/fakeid.onnx``) takes one float32 tensor ``features`` of shape
(N, 10) — the columns of :data:`l1refit.ml.fakeid.FAKE_FEATURES`, listed in its metadata — and gives ``fake_prob``
(N, 1); the classifier's firmware design (``results/fpga/fakeid/design.json``) is loaded the same way and scores
with the emulated board. The graph is one of its own beside the regression's: the regression graph's one (N, 4)
input is a contract users' scripts rely on, and the classifier needs more (the quality and the neighbour features).

The neighbour features describe the other *selected* L1 muons of the event (:mod:`l1refit.skim.neighbours`), so
the refit applies the skim's L1 selection, stored in the graph's metadata, to each event's muons before it computes
them; a muon outside the selection gets no fake probability (NaN): the classifier never saw such muons.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort

from l1refit import __version__, scales
from l1refit.deploy.metadata import add_metadata
from l1refit.deploy.runtime import CPU, check_threads, make_session, run_session
from l1refit.errors import L1RefitError
from l1refit.formats.output import atomic_path
from l1refit.ml.fakeid_columns import FAKE_PROB
from l1refit.skim import neighbours
from l1refit.skim.selection import NO_TF_INDEX, Selection, l1_steps

if TYPE_CHECKING:  # torch is imported by the export only: the refit runs without it
    from l1refit.ml.fakeid import FakeClassifier

log = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = "features"
OUTPUT_NAME = FAKE_PROB
KIND = "l1refit-fakeid"
TOLERANCE = 1e-5  # |ONNX − PyTorch| allowed on a probability
# Row columns the features are computed from, beside the features themselves.
SELECTION_COLUMNS = ("hwPhi", "hwEta", "hwQual", "hwPt", "tfMuonIndex")


def export_fakeid(classifier: FakeClassifier, path: str | Path, selection: Selection) -> onnx.ModelProto:
    """Write the classifier as an ONNX graph (atomically) with its features and the candidates' L1 selection in its
    metadata; check it against PyTorch on the standardisation's own scale of inputs; return it."""
    import torch

    module = classifier.module.float().eval()
    n = len(classifier.features)
    rng = np.random.default_rng(0)
    offset, scale = (getattr(module, name).numpy() for name in ("offset", "scale"))
    example = torch.as_tensor((offset + scale * rng.standard_normal((64, n))).astype(np.float32))
    with torch.no_grad():
        program = torch.onnx.export(
            module, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=OPSET, external_data=False,
            optimize=True, verbose=False,
        )  # fmt: skip
        expected = module(example).numpy()
    proto = program.model_proto
    add_metadata(proto, {
        "kind": KIND,
        "producer": f"l1refit {__version__}",
        "inputs": json.dumps(list(classifier.features)),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "selection": json.dumps(dataclasses.asdict(selection)),
        "training": json.dumps(classifier.metadata, sort_keys=True, default=str),
    })  # fmt: skip
    proto.doc_string = "l1refit: fake probability of a selected L1 muon from its hardware values and neighbours"
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=list(CPU))
    diff = float(np.max(np.abs(session.run(None, {INPUT_NAME: example.numpy()})[0] - expected)))
    if diff > TOLERANCE:
        raise RuntimeError(f"{path}: ONNX and PyTorch fake probabilities differ by {diff} (> {TOLERANCE})")
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return proto


@dataclass(frozen=True)
class FakeId:
    """A fake classifier ready to score refit rows, with the selection its candidates passed: the exported graph in
    an onnxruntime session, or the emulated firmware design (``score`` gives the probability of a feature matrix)."""

    path: Path
    inputs: tuple[str, ...]
    selection: Selection
    score: Callable[[np.ndarray], np.ndarray]  # (N, n_inputs) float32 features → (N,) fake probability
    engine: str = "onnxruntime"  # or "firmware": the emulated fixed-point design (deploy.fpga.fakeid)

    @property
    def columns(self) -> tuple[str, ...]:
        """Row columns the refit must read: the model inputs that are not neighbour features, and what the
        selection and the neighbours are computed from."""
        own = [name for name in self.inputs if name not in neighbours.COLUMNS]
        return tuple(dict.fromkeys([*own, *SELECTION_COLUMNS]))

    def __call__(self, rows: Mapping[str, np.ndarray], groups: np.ndarray) -> np.ndarray:
        """The fake probability (float32, NaN outside the selection) of every row; ``groups`` numbers each row's
        event (rows of one event adjacent). Rows that carry the neighbour columns already (the skim's candidate
        table) are taken as they are: every row selected, the features read."""
        n = len(groups)
        out = np.full(n, np.nan, np.float32)
        if all(name in rows for name in neighbours.COLUMNS):
            chosen, extra = np.arange(n), {name: rows[name] for name in neighbours.COLUMNS}
        else:
            chosen = np.flatnonzero(selected(rows, self.selection))
            counts = np.bincount(groups[chosen], minlength=int(groups[-1]) + 1 if n else 0)
            own = (rows[name][chosen] for name in ("hwPhi", "hwEta", "hwQual", "hwPt"))
            extra = neighbours.neighbour_features(counts, *own)
        if chosen.size:
            x = np.empty((chosen.size, len(self.inputs)), np.float32)
            for j, name in enumerate(self.inputs):
                x[:, j] = extra[name] if name in extra else rows[name][chosen]
            out[chosen] = self.score(x)
        return out


def selected(rows: Mapping[str, np.ndarray], sel: Selection) -> np.ndarray:
    """The skim's L1 selection (:func:`l1refit.skim.selection.l1_steps`) on flat refit rows: BX from ``muon_bx``
    (scouting rows are one BX each: all pass), the barrel from ``tfMuonIndex`` or, where a file has none, from
    |η at the station| (``hwEta``), the quality, and the L1 pT ``l1_pt``."""
    n = len(rows["hwPt"])
    tf = rows.get("tfMuonIndex")
    by_eta = tf is None or bool(np.all(tf == NO_TF_INDEX))
    fields = {
        "bx": rows.get("muon_bx", np.full(n, sel.bx)),
        "tfMuonIndex": tf,
        "etaSt2": scales.hw_to_eta(rows["hwEta"]),
        "hwQual": rows["hwQual"],
        "pt": rows["l1_pt"],
    }
    mask = np.ones(n, bool)
    for step in l1_steps(fields.__getitem__, sel, by_eta).values():
        mask &= step
    return mask


def event_groups(rows: Mapping[str, np.ndarray], identity: Sequence[str]) -> np.ndarray:
    """An event number per row (0, 1, …): a new event starts where any event identity column changes (rows of one
    event are adjacent in every refit input; ``l1_index`` and ``muon_bx`` are per muon, not per event)."""
    names = [name for name in identity if name not in ("l1_index", "muon_bx") and name in rows]
    n = len(rows["hwPt"])
    change = np.zeros(max(n - 1, 0), bool)
    for name in names:
        change |= rows[name][1:] != rows[name][:-1]
    return np.concatenate([[0], np.cumsum(change)]).astype(np.int64) if n else np.zeros(0, np.int64)


def load_fakeid(path: str | Path, threads: int = 1) -> FakeId:
    """Open a fake classifier: the exported ONNX graph, or (a ``.json`` file) the firmware design of
    :mod:`l1refit.deploy.fpga.fakeid`, whose probability is the sigmoid of the emulated board's logit. A file that is
    not one is an error naming it."""
    check_threads(threads)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such fake-classifier file")
    if path.suffix == ".json":
        return _load_design(path)
    try:
        session = make_session(path, threads, CPU)
    except Exception as err:  # onnxruntime has no common exception base
        raise L1RefitError(f"{path}: not an ONNX model onnxruntime can load ({type(err).__name__})") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("kind") != KIND:
        raise L1RefitError(f"{path}: not an l1refit fake classifier (metadata kind {meta.get('kind')!r}, "
                           f"expected {KIND!r}; the regression graph is passed with --model)")  # fmt: skip
    inputs = tuple(json.loads(meta["inputs"]))

    def score(x: np.ndarray) -> np.ndarray:
        return run_session(session, x, INPUT_NAME, OUTPUT_NAME)[:, 0]

    return FakeId(path, inputs, Selection.from_config(json.loads(meta["selection"])), score)


def _load_design(path: Path) -> FakeId:
    from l1refit.deploy.fpga.emulate import plan
    from l1refit.deploy.fpga.fakeid import FakeDesign, saturated

    try:
        design = FakeDesign.load(path)
        plan(design)  # the input types are known and every accumulator is exact in float64
        selection = Selection.from_config(design.selection or None)
    except (ValueError, KeyError, TypeError) as err:
        message = (str(err).splitlines() or [type(err).__name__])[0]
        prefix = "" if message.startswith(str(path)) else f"{path}: not a usable fake-ID FPGA design: "
        raise L1RefitError(prefix + message) from None

    def score(x: np.ndarray) -> np.ndarray:
        try:
            return design.probability(saturated(x, design.inputs)).astype(np.float32)
        except ValueError as err:  # an integer outside its hardware type
            raise L1RefitError(f"{path}: {err}") from None

    return FakeId(path, design.inputs, selection, score, "firmware")
