"""Where one inference call's time goes: onnxruntime's profiler, kernel time per node of a graph.

In the exported graph the ~30 small element-wise nodes cost as much as the MLP's Gemms; this is what showed it
(see docs/deploy.md, and :mod:`l1refit.deploy.optimize` for the graph that removes them).
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from l1refit.deploy.hw_inputs import random_hw
from l1refit.deploy.metadata import graph_inputs
from l1refit.deploy.runtime import make_session


def profile_ops(path: str | Path, *, batch_size: int = 4096, threads: int = 1, calls: int = 200,
                inputs: np.ndarray | None = None) -> tuple[pd.DataFrame, float]:  # fmt: skip
    """Where one call's time goes: onnxruntime's profiler, kernel µs per call per node, and the whole run's median µs.

    Returns (``DataFrame[op_type, node, us_per_call, share]`` sorted by time, median µs of ``model_run``); per-node
    times are medians over the calls (robust to a preempted call), ``share`` is of their sum.
    """
    x = inputs if inputs is not None else random_hw(batch_size, graph_inputs(path))
    x = np.ascontiguousarray(x[:batch_size], dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="l1refit-profile-") as tmp:
        session = make_session(path, threads, profile_prefix=str(Path(tmp) / "ort"))
        name = session.get_inputs()[0].name
        for _ in range(calls):
            session.run(None, {name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    kernel: dict[str, list[float]] = defaultdict(list)
    op_of: dict[str, str] = {}
    runs = []
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"][: -len("_kernel_time")]
            kernel[node].append(event["dur"])
            op_of[node] = event.get("args", {}).get("op_name", "?")
        elif event.get("name") == "model_run":
            runs.append(event["dur"])
    medians = {node: float(np.median(durations)) for node, durations in kernel.items()}
    total = sum(medians.values()) or 1.0
    frame = pd.DataFrame(
        [{"op_type": op_of[n], "node": n, "us_per_call": us, "share": us / total} for n, us in medians.items()]
    ).sort_values("us_per_call", ascending=False, ignore_index=True)
    return frame, float(np.median(runs[1:] if len(runs) > 1 else runs))
