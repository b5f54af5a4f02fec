"""The arithmetic of Table 3: FLOPs per inference of a graph, and the FP32 peak FLOP/s of this process's cores.

Table 3 reports measured GFLOP/s as a fraction of that peak (``fp32_peak_fraction``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import onnx

from l1refit.deploy.optimize import PHYSICS_PREFIX


def mlp_flops(path: str | Path) -> int:
    """FLOPs of one inference through the graph's dense layers: 2·in·out per Gemm/MatMul (4,544 for 4→32→32→32→3).

    Weights behind a DequantizeLinear (a QDQ int8 graph) count too; the physics nodes do not (element-wise ones,
    and the ``physics_*`` Gemms of :func:`~l1refit.deploy.optimize.optimize_onnx`'s graph).
    """
    proto = onnx.load_model(str(path))
    weights = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    dequantized = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    total = 0
    for node in proto.graph.node:
        if node.op_type in ("Gemm", "MatMul") and not node.name.startswith(PHYSICS_PREFIX):
            weight = dequantized.get(node.input[1], node.input[1])
            if weight in weights:
                total += 2 * math.prod(weights[weight][-2:])
    return total


@dataclass(frozen=True)
class CpuPeak:
    """FP32 peak of the cores this process may use: cores × GHz × FLOPs per cycle (FMA units × lanes × 2)."""

    model: str
    cores: int
    ghz: float
    isa: str
    fma_units: int
    lanes: int

    @property
    def flops_per_cycle(self) -> int:
        return self.fma_units * self.lanes * 2

    def gflops(self, cores: int | None = None) -> float:
        return min(cores or self.cores, self.cores) * self.ghz * self.flops_per_cycle

    def describe(self) -> str:
        units = f"{self.isa}, {self.fma_units} FMA units x {self.lanes} lanes x 2"
        return (f"{self.model}: {self.cores} cores x {self.ghz:g} GHz x {self.flops_per_cycle} FP32 FLOPs/cycle "
                f"({units}) = {self.gflops():.1f} GFLOP/s")  # fmt: skip


def cpu_peak(cpuinfo: str | None = None, cores: int | None = None) -> CpuPeak:
    """The FP32 peak from ``/proc/cpuinfo`` (what ``lscpu`` shows) and the CPU affinity of this process.

    Clock: the nominal one in the model name ("@ 2.10GHz"), else ``cpu MHz``. AVX-512 cores are counted with two
    512-bit FMA units (Xeon Scalable Gold/Platinum, Sapphire Rapids), AVX2 cores with two 256-bit units. The sustained
    AVX-512 clock can be lower than nominal and turbo higher; under KVM neither is visible, so nominal it is.
    """
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name", "unknown CPU")
    found = re.search(r"@\s*([\d.]+)\s*GHz", model)
    ghz = float(found.group(1)) if found else float(fields.get("cpu MHz", "0")) / 1000.0
    flags = set(fields.get("flags", "").split())
    if "avx512f" in flags:
        isa, units, lanes = "AVX-512 FMA", 2, 16
    elif {"avx2", "fma"} <= flags:
        isa, units, lanes = "AVX2 FMA", 2, 8
    else:
        isa, units, lanes = "SSE (mul+add)", 1, 4
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return CpuPeak(model=model, cores=cores, ghz=ghz, isa=isa, fma_units=units, lanes=lanes)
