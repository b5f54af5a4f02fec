"""RTL simulation of the da4ml Verilog with Verilator: the pipelined hardware description, clocked sample by sample,
must give the emulator's outputs bit for bit.

The Verilog project (:func:`l1refit.deploy.fpga.rtl.write_verilog`) carries da4ml's C++ test bench
(``sim/<project>_wrapper_binder.cc``: one input word per clock, outputs read ``latency`` clocks later). It is
copied to a scratch directory, verilated and linked into a shared library that ``inference`` is called from.
Verilator 5.006 (Debian 12) needs three changes to da4ml's build, made here and nowhere in the project itself:
its lint pragmas name ``WIDTHTRUNC`` (added in 5.008; ``WIDTH`` covers it), its ``-build`` makes no
``libverilated.a`` (compiled here from the Verilator sources), and the Debian wrapper's ``verilator -V`` reports
the include root on a line the build script does not read (the include paths are passed directly).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from l1refit.deploy.fpga.rtl import PROJECT

WRAPPER = f"{PROJECT}_wrapper"
PREFIX = f"V{WRAPPER}"


class VerilatorMissing(RuntimeError):
    """Verilator is not on PATH."""


def verilator_version() -> str:
    """``Verilator 5.006 …`` of the verilator on PATH; :class:`VerilatorMissing` if there is none."""
    exe = shutil.which("verilator")
    if exe is None:
        raise VerilatorMissing("Verilator not found on PATH (Debian/Ubuntu: apt-get install verilator)")
    return subprocess.run([exe, "--version"], check=True, capture_output=True, text=True).stdout.strip()


def _root() -> Path:
    out = subprocess.run(["verilator", "--getenv", "VERILATOR_ROOT"], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def _run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"RTL simulation build failed: {' '.join(args[:3])} …\n{tail}")


def build(rtl_dir: str | Path, work: str | Path, jobs: int = 1) -> Path:
    """Verilate a copy of the Verilog project ``rtl_dir`` in ``work`` (``jobs`` compilers); the path of the test
    bench's library."""
    verilator_version()
    work = Path(work)
    project = work / "rtl"
    shutil.copytree(rtl_dir, project)
    for path in (project / "src").rglob("*.v"):
        path.write_text(re.sub(r"\bWIDTHTRUNC\b", "WIDTH", path.read_text()))
    sim, root = project / "sim", _root()
    include = [f"-I{root / 'include'}", f"-I{root / 'include' / 'vltstd'}"]
    cflags = ["-std=c++17", "-fPIC", "-O"]
    _run(["verilator", "--cc", "-j", str(jobs), "-build", f"{WRAPPER}.v", "--prefix", PREFIX, "-Wno-fatal",
          "-CFLAGS", " ".join(cflags), "-I../src", "-I../src/static"], sim)  # fmt: skip
    obj = sim / "obj_dir"
    runtime = []
    for name in ("verilated", "verilated_threads"):
        target = obj / f"l1refit_{name}.o"
        _run(["g++", *cflags, *include, "-c", str(root / "include" / f"{name}.cpp"), "-o", str(target)], sim)
        runtime.append(str(target))
    archive = obj / "l1refit_sim.a"  # one archive: the linker resolves the model's and the runtime's symbols in it
    _run(["ar", "rcs", str(archive), *sorted(str(p) for p in obj.glob(f"{PREFIX}*.o")), *runtime], sim)
    library = sim / "l1refit_rtl_sim.so"
    _run(["g++", *cflags, "-I./obj_dir", *include, "-I../src", "-pthread", "-shared", "-o", str(library),
          f"{WRAPPER}_binder.cc", str(archive)], sim)  # fmt: skip
    return library


def run(library: str | Path, hw: np.ndarray, in_frac: int, out_kif: tuple[int, int, int], n_out: int) -> np.ndarray:
    """Clock the verilated design over the rows of ``hw`` (raw inputs, ``in_frac`` fractional bits); the outputs
    as signed ``out_kif`` (sign, integer, fractional bits) fixed-point values, float64 (N, n_out)."""
    lib = ctypes.CDLL(str(library))
    lib.inference.argtypes = [ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
                              ctypes.c_size_t]  # fmt: skip
    inputs = np.ascontiguousarray(np.floor(np.asarray(hw, dtype=np.float64) * 2.0**in_frac), dtype=np.int32)
    outputs = np.empty(len(inputs) * n_out, dtype=np.int32)
    lib.inference(inputs.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                  outputs.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), len(inputs), 1)  # fmt: skip
    k, i, f = out_kif
    width = k + i + f  # the test bench returns the low ``width`` bits; sign-extend them
    raw = outputs.astype(np.int64) & ((1 << width) - 1)
    if k:
        raw = np.where(raw >= 1 << (width - 1), raw - (1 << width), raw)
    return (raw * 2.0**-f).reshape(len(inputs), n_out)


def simulate(rtl_dir: str | Path, comb, hw: np.ndarray, jobs: int = 1) -> np.ndarray:
    """Build and run the RTL simulation of ``rtl_dir`` (the Verilog of ``comb``, da4ml's traced logic) on ``hw``."""
    from da4ml.types import minimal_kif

    kif_in = np.array([minimal_kif(q) for q in comb.inp_qint])
    kif_out = np.array([minimal_kif(q) for q in comb.out_qint])
    out_kif = (int(kif_out[:, 0].max()), int(kif_out[:, 1].max()), int(kif_out[:, 2].max()))
    with tempfile.TemporaryDirectory(prefix="l1refit-rtlsim-") as work:
        library = build(rtl_dir, work, jobs)
        memfiles = Path(work) / "rtl" / "src" / "memfiles"
        cwd = os.getcwd()
        try:  # the test bench reads lookup-table contents relative to the working directory
            if memfiles.is_dir():
                os.chdir(memfiles)
            return run(library, hw, int(kif_in[:, 2].max()), out_kif, len(comb.out_qint))
        finally:
            os.chdir(cwd)
