"""The key-value metadata of an ONNX graph (``metadata_props``): read, add, and the model's input columns.

:mod:`l1refit.deploy.onnx_export` writes them (model id, inputs, units, training configuration); the optimised and
int8 graphs copy them and add their own keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import onnx


def metadata_of(proto: onnx.ModelProto) -> dict[str, str]:
    """The metadata of a loaded graph, as a dict."""
    return {entry.key: entry.value for entry in proto.metadata_props}


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an ONNX file; a file that is not ONNX is an error naming it."""
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError / ValueError variants
        raise ValueError(f"{path}: not an ONNX model ({type(err).__name__}: {err})") from None
    return metadata_of(proto)


def add_metadata(proto: onnx.ModelProto, items: Mapping[str, str]) -> None:
    """Append ``items`` to the graph's metadata, in their order."""
    for key, value in items.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def graph_inputs(path: str | Path) -> tuple[str, ...]:
    """The skim columns the graph takes, in order (export metadata ``inputs``)."""
    meta = read_metadata(path)
    if "inputs" not in meta:
        raise ValueError(f"{path}: no 'inputs' metadata; not a graph written by l1refit.deploy.onnx_export")
    return tuple(json.loads(meta["inputs"]))
