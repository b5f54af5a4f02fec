"""The arithmetic of Table 3: FLOPs per inference of a graph, and the nominal FP32 peak FLOP/s of this process's
cores where the CPU's FMA width is known.

Table 3 reports measured GFLOP/s as a fraction of the measured SGEMM roofline (:mod:`l1refit.deploy.roofline`,
``roofline_fraction``) and, where it exists, of this nominal peak (``fp32_peak_fraction``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import onnx

from l1refit.deploy.optimize import PHYSICS_PREFIX
from l1refit.deploy.roofline import usable_cores


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
    """Nominal FP32 peak of the cores this process may use: cores × GHz × FLOPs per cycle (FMA units × lanes × 2).

    ``fma_units`` is 0 when the CPU's microarchitecture is not in :data:`FMA_WIDTHS`: then there is no nominal peak
    (``gflops`` is NaN) and only the measured roofline (:mod:`l1refit.deploy.roofline`) says what the CPU can do.
    """

    model: str
    cores: int
    ghz: float
    isa: str
    fma_units: int
    lanes: int
    microarchitecture: str = "unknown"

    @property
    def known(self) -> bool:
        return self.fma_units > 0 and self.ghz > 0

    @property
    def flops_per_cycle(self) -> int:
        return self.fma_units * self.lanes * 2

    def gflops(self, cores: int | None = None) -> float:
        if not self.known:
            return math.nan
        return min(cores or self.cores, self.cores) * self.ghz * self.flops_per_cycle

    def describe(self) -> str:
        if not self.known:
            return (f"{self.model} ({self.microarchitecture}, {self.isa}): FMA width not known for this CPU, "
                    "no nominal peak (the measured SGEMM roofline is the reference)")  # fmt: skip
        units = f"{self.microarchitecture}: {self.fma_units} FMA units x {self.lanes} FP32 lanes x 2"
        return (f"{self.model}: {self.cores} cores x {self.ghz:g} GHz x {self.flops_per_cycle} FP32 FLOPs/cycle "
                f"({units}) = {self.gflops():.1f} GFLOP/s nominal")  # fmt: skip


# FP32 FMA width per core of the CPU families where it is the same for every model (vendor, family, models;
# microarchitecture, FMA units, FP32 lanes per unit). Sources: Intel's optimization reference manual (vol. 1, the
# execution-unit tables of each generation) and AMD's software optimization guides for Zen 2/3/4 (families 17h/19h).
# Zen 4 executes 512-bit instructions on its two 256-bit FMA pipes, so AVX-512 does not double its peak; Skylake-SP
# and Cascade Lake (Intel model 85) have one or two 512-bit units depending on the SKU, read from the model name.
FMA_WIDTHS: tuple[tuple[str, int, range | frozenset, str, int, int], ...] = (
    ("GenuineIntel", 6, frozenset({63, 79, 86}), "Haswell/Broadwell server", 2, 8),
    ("GenuineIntel", 6, frozenset({106, 108}), "Ice Lake-SP", 2, 16),
    ("GenuineIntel", 6, frozenset({143}), "Sapphire Rapids", 2, 16),
    ("GenuineIntel", 6, frozenset({207}), "Emerald Rapids", 2, 16),
    ("GenuineIntel", 6, frozenset({173, 174}), "Granite Rapids", 2, 16),
    ("AuthenticAMD", 23, range(0x30, 0x100), "Zen 2", 2, 8),
    ("AuthenticAMD", 25, range(0x00, 0x100), "Zen 3/Zen 4", 2, 8),
)
_SKYLAKE_SP = 85


def fma_width(vendor: str, family: int, model: int, name: str, avx512: bool) -> tuple[str, int, int] | None:
    """(microarchitecture, FMA units, FP32 lanes) of a CPU (``name``: its model name; ``avx512``: the avx512f flag),
    or None where the table does not know it."""
    if vendor == "GenuineIntel" and family == 6 and model == _SKYLAKE_SP:
        if re.search(r"Platinum|Gold 6\d{3}|Gold 5122", name):
            return "Skylake-SP/Cascade Lake, two AVX-512 units", 2, 16
        if re.search(r"Silver|Bronze|Gold 5\d{3}", name):
            return "Skylake-SP/Cascade Lake, one AVX-512 unit", 1, 16
        return None
    for table_vendor, table_family, models, microarchitecture, units, lanes in FMA_WIDTHS:
        if (vendor, family) == (table_vendor, table_family) and model in models:
            if microarchitecture == "Zen 3/Zen 4":
                microarchitecture = "Zen 4" if avx512 else "Zen 3"
            return microarchitecture, units, lanes
    return None


def cpu_peak(cpuinfo: str | None = None, cores: int | None = None) -> CpuPeak:
    """The nominal FP32 peak from ``/proc/cpuinfo`` (what ``lscpu`` shows) and the CPU affinity of this process.

    The FMA width comes from :data:`FMA_WIDTHS` by vendor, family and model, never from the ISA flags alone (an
    AVX-512 flag does not say how wide the FMA units are). Clock: the nominal one in the model name ("@ 2.10GHz"),
    else ``cpu MHz``; under load the clock differs (AVX-512 licence lower, turbo higher), and a hypervisor may show
    hyperthreads as cores, so the nominal peak is a label, and Table 3's fractions use the measured roofline.
    """
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name", "unknown CPU")
    found = re.search(r"@\s*([\d.]+)\s*GHz", model)
    ghz = float(found.group(1)) if found else float(fields.get("cpu MHz", "0") or 0) / 1000.0
    flags = set(fields.get("flags", "").split())
    isa = "AVX-512" if "avx512f" in flags else "AVX2 FMA" if {"avx2", "fma"} <= flags else "SSE"
    family = int(fields.get("cpu family", "-1") or -1)
    number = int(fields.get("model", "-1") or -1)
    width = fma_width(fields.get("vendor_id", ""), family, number, model, "avx512f" in flags)
    if cores is None:
        cores = usable_cores()
    if width is None:
        return CpuPeak(model=model, cores=cores, ghz=ghz, isa=isa, fma_units=0, lanes=0,
                       microarchitecture=f"family {family} model {number}")  # fmt: skip
    microarchitecture, units, lanes = width
    return CpuPeak(model=model, cores=cores, ghz=ghz, isa=isa, fma_units=units, lanes=lanes,
                   microarchitecture=microarchitecture)  # fmt: skip
