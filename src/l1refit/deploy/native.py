"""The optimised inference graph as a compiled kernel: the MLP and the physics in one pass over register tiles.

onnxruntime runs the optimised graph (:mod:`l1refit.deploy.optimize`) as a sequence of library matrix products on
(batch × 32) matrices, each writing its result to memory and reading it back; with K = 4 and N = 3 layers at both
ends it stays near a third of the machine's SGEMM throughput (docs/deploy.md, "Inference speed"). The kernel in
``native_mlp.c`` keeps a tile of 64 muons in vector registers through every layer (one register per feature and
16 muons) and issues nothing but fused multiply-adds with broadcast weights in its inner loop.

It is compiled on first use with the machine's C compiler (``$CC``, else ``cc``) and ``-march=native``, cached
under ``$L1REFIT_CACHE`` (default ``~/.cache/l1refit``) by a hash of the source, the flags, the compiler and the
CPU (a home directory shared by different nodes gets one library per CPU), and loaded with ctypes, which releases
the GIL during a call: concurrent Python threads run on separate cores. Its outputs equal the graph's within float
rounding (the order of the sums differs; tests/deploy/test_native.py checks it against onnxruntime).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from l1refit.deploy.metadata import metadata_of

SOURCE = Path(__file__).with_name("native_mlp.c")
FLAGS = ("-O3", "-funroll-loops", "-fno-math-errno", "-shared", "-fPIC")  # and -march=<march>, native by default
BACKEND = "l1refit kernel CPU"  # Table 3's backend name of the kernel's rows
N_OUT = 3
# the physics nodes of the optimised graph of an absolute-pT model, in the order the kernel computes them
TAIL = ("physics_l1_values", "mlp_output_plus_l1", "physics_phi_turns", "physics_floor", "physics_wrap")

_FloatPointer = ctypes.POINTER(ctypes.c_float)


class NativeKernelError(RuntimeError):
    """The kernel cannot be built or loaded here (no C compiler, a failed compilation)."""


class _Model(ctypes.Structure):
    _fields_ = [
        ("n_inputs", ctypes.c_int32),
        ("n_hidden", ctypes.c_int32),
        ("widths", ctypes.POINTER(ctypes.c_int32)),
        ("weights", ctypes.POINTER(_FloatPointer)),
        ("biases", ctypes.POINTER(_FloatPointer)),
        ("w_last", _FloatPointer),
        ("l1_scale", _FloatPointer),
        ("l1_offset", _FloatPointer),
        ("wrap_in", _FloatPointer),
        ("half", ctypes.c_float),
        ("wrap_out", _FloatPointer),
    ]


# ---------------------------------------------------------------------------------------------------------------
# building


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$L1REFIT_CACHE``, else ``$XDG_CACHE_HOME/l1refit``, else ~/.cache."""
    if os.environ.get("L1REFIT_CACHE"):
        return Path(os.environ["L1REFIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "l1refit"


def compiler() -> str:
    """The C compiler: ``$CC``, else ``cc``; an error that says so when neither is installed."""
    name = os.environ.get("CC", "cc")
    found = shutil.which(name)
    if found is None:
        raise NativeKernelError(f"no C compiler {name!r} found (set CC or install gcc): the compiled kernel needs one")
    return found


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU model and its flags (Linux), else the platform's description."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() + platform.machine()
    lines = [line for line in text.splitlines() if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(lines))


def build_kernel(directory: str | Path | None = None, march: str = "native") -> Path:
    """The compiled kernel's shared library for ``-march=<march>``, compiled now unless the cache has it; its path.

    ``native`` uses every instruction of this CPU (AVX-512 where it has it); another target (``x86-64-v3`` for
    AVX2, ``x86-64`` for SSE2) builds the narrower code paths, e.g. for a library shared by several CPU types.
    Written under a temporary name and renamed, so concurrent jobs never load a half-written library.
    """
    cc = compiler()
    flags = [*FLAGS, f"-march={march}"]
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), " ".join(flags), version, _cpu_signature()]).encode())
    directory = Path(directory) if directory is not None else cache_dir()
    library = directory / f"native_mlp-{key.hexdigest()[:16]}.so"
    if library.exists():
        return library
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=library.stem + ".", suffix=".so.tmp", dir=directory)
    except OSError as err:
        raise NativeKernelError(f"cannot write the kernel to {directory} ({err}): set L1REFIT_CACHE") from None
    os.close(fd)
    try:
        done = subprocess.run([cc, *flags, "-o", tmp, str(SOURCE)], capture_output=True, text=True)
        if done.returncode != 0:
            raise NativeKernelError(f"compiling {SOURCE} with {cc} failed:\n{done.stderr.strip()}")
        os.replace(tmp, library)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return library


def _load(directory: str | Path | None, march: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build_kernel(directory, march)))
    lib.l1refit_mlp.argtypes = [ctypes.POINTER(_Model), _FloatPointer, _FloatPointer, ctypes.c_int64]
    lib.l1refit_mlp.restype = ctypes.c_int
    lib.l1refit_mlp_limits.argtypes = [ctypes.POINTER(ctypes.c_int32)] * 3
    return lib


# ---------------------------------------------------------------------------------------------------------------
# the graph


def _gemm(node: onnx.NodeProto, arrays: dict[str, np.ndarray], path: str) -> tuple[np.ndarray, np.ndarray | None]:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
    if attrs.get("transA", 0) or not attrs.get("transB", 0) or not plain:
        raise ValueError(f"{path}: Gemm {node.name} is not Y = X·Wᵀ + C ({attrs}): not an optimised graph")
    weight = arrays.get(node.input[1])
    bias = arrays.get(node.input[2]) if len(node.input) > 2 else None
    if weight is None:
        raise ValueError(f"{path}: Gemm {node.name} has no constant weight: not an optimised graph")
    return np.ascontiguousarray(weight, dtype=np.float32), bias


def graph_arrays(path: str | Path) -> dict:
    """The constants of an optimised absolute-pT graph, in the kernel's layout; an error naming what differs.

    The graph must be the chain :func:`l1refit.deploy.optimize.optimize_onnx` writes for an absolute-pT model:
    one input (N, n), hidden ``Gemm → Relu`` layers, then the nodes of :data:`TAIL`.
    """
    path = str(path)
    proto = onnx.load_model(path)
    graph = proto.graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    if not metadata_of(proto).get("optimized"):
        raise ValueError(f"{path}: not an optimised graph (no 'optimized' metadata): run optimize_onnx first")
    by_name = {node.name: node for node in graph.node}
    missing = [name for name in TAIL if name not in by_name]
    if missing:
        raise ValueError(f"{path}: no physics nodes {missing}: the kernel runs absolute-pT models' optimised graphs")
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    hw = graph.input[0].name
    weights, biases, tensor = [], [], hw
    while True:
        gemm = [n for n in consumers.get(tensor, []) if n.op_type == "Gemm" and n.name not in TAIL]
        if not gemm:
            break
        users = consumers.get(gemm[0].output[0], [])
        if len(gemm) != 1 or len(users) != 1 or users[0].op_type != "Relu":
            found = ", ".join(f"{u.op_type} {u.name}" for u in users) or "nothing"
            raise ValueError(f"{path}: hidden layer {gemm[0].name} feeds {found}, not one Relu: the kernel needs "
                             "ReLU hidden layers")  # fmt: skip
        weight, bias = _gemm(gemm[0], arrays, path)
        weights.append(weight)
        biases.append(np.ascontiguousarray(bias, dtype=np.float32))
        tensor = users[0].output[0]
    if not weights:
        raise ValueError(f"{path}: no hidden Gemm → Relu layer reads {hw!r}")
    tail = {name: by_name[name] for name in TAIL}
    if tail["mlp_output_plus_l1"].input[0] != tensor:
        raise ValueError(f"{path}: the output layer does not read the last hidden layer ({tensor!r})")
    l1_scale, l1_offset = _gemm(tail["physics_l1_values"], arrays, path)
    w_last, _ = _gemm(tail["mlp_output_plus_l1"], arrays, path)
    wrap_in, half = _gemm(tail["physics_phi_turns"], arrays, path)
    wrap_out, _ = _gemm(tail["physics_wrap"], arrays, path)
    n_inputs = weights[0].shape[1]
    return {
        "weights": weights,
        "biases": biases,
        "w_last": w_last,
        "l1_scale": l1_scale,
        "l1_offset": np.ascontiguousarray(l1_offset, dtype=np.float32),
        "wrap_in": np.ascontiguousarray(wrap_in.reshape(N_OUT)),
        "half": float(np.asarray(half).reshape(-1)[0]),
        "wrap_out": np.ascontiguousarray(wrap_out.reshape(N_OUT)),
        "n_inputs": n_inputs,
    }


@dataclass
class NativeMLP:
    """An optimised graph run by the compiled kernel: ``kernel(hw)`` → (N, 3) float32, as the graph's output.

    ``threads`` > 1 splits a call's rows among that many Python threads (the kernel runs without the GIL).
    """

    path: str
    threads: int = 1
    _lib: ctypes.CDLL = field(repr=False, default=None)
    _model: _Model = field(repr=False, default=None)
    _keep: list = field(repr=False, default_factory=list)
    _pool: ThreadPoolExecutor | None = field(repr=False, default=None)

    @classmethod
    def from_onnx(cls, path: str | Path, *, threads: int = 1, build_dir: str | Path | None = None,
                  march: str = "native") -> NativeMLP:  # fmt: skip
        """The kernel (built for ``-march=<march>``, :func:`build_kernel`) with the constants of the optimised graph
        ``path``; ``threads`` > 1 splits each call's rows among that many threads."""
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        arrays = graph_arrays(path)
        lib = _load(build_dir, march)
        limits = [ctypes.c_int32() for _ in range(3)]
        lib.l1refit_mlp_limits(*(ctypes.byref(v) for v in limits))
        max_inputs, max_width, _ = (v.value for v in limits)
        widths = [w.shape[0] for w in arrays["weights"]]
        if arrays["n_inputs"] > max_inputs or max(widths) > max_width:
            raise ValueError(f"{path}: {arrays['n_inputs']} inputs and widths {widths} exceed the kernel's limits "
                             f"({max_inputs} inputs, width {max_width})")  # fmt: skip
        keep: list = [arrays]

        def pointer(a: np.ndarray) -> ctypes.Array:
            return a.ctypes.data_as(_FloatPointer)

        widths_c = (ctypes.c_int32 * len(widths))(*widths)
        weights_c = (_FloatPointer * len(widths))(*(pointer(w) for w in arrays["weights"]))
        biases_c = (_FloatPointer * len(widths))(*(pointer(b) for b in arrays["biases"]))
        keep += [widths_c, weights_c, biases_c]
        model = _Model(arrays["n_inputs"], len(widths), widths_c, weights_c, biases_c, pointer(arrays["w_last"]),
                       pointer(arrays["l1_scale"]), pointer(arrays["l1_offset"]), pointer(arrays["wrap_in"]),
                       arrays["half"], pointer(arrays["wrap_out"]))  # fmt: skip
        pool = ThreadPoolExecutor(threads, thread_name_prefix="l1refit-kernel") if threads > 1 else None
        return cls(str(path), threads, lib, model, keep, pool)

    @property
    def n_inputs(self) -> int:
        return int(self._model.n_inputs)

    def run_into(self, hw: np.ndarray, out: np.ndarray) -> None:
        """Write the graph's output for ``hw`` (C-contiguous float32 (N, n_inputs)) into ``out`` ((N, 3) float32)."""
        if hw.dtype != np.float32 or not hw.flags.c_contiguous or hw.ndim != 2 or hw.shape[1] != self.n_inputs:
            raise ValueError(f"inputs must be C-contiguous float32 (N, {self.n_inputs}), got {hw.dtype} {hw.shape}")
        if out.dtype != np.float32 or not out.flags.c_contiguous or out.shape != (len(hw), N_OUT):
            raise ValueError(f"output must be C-contiguous float32 ({len(hw)}, {N_OUT}), got {out.dtype} {out.shape}")
        if self._pool is None or len(hw) < 1024 * self.threads:
            self._call(hw, out)
            return
        bounds = np.linspace(0, len(hw), self.threads + 1).astype(int)
        parts = [self._pool.submit(self._call, hw[a:b], out[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for part in parts:
            part.result()

    def _call(self, hw: np.ndarray, out: np.ndarray) -> None:
        status = self._lib.l1refit_mlp(ctypes.byref(self._model), hw.ctypes.data_as(_FloatPointer),
                                       out.ctypes.data_as(_FloatPointer), len(hw))  # fmt: skip
        if status != 0:
            raise RuntimeError(f"{self.path}: the kernel refused the model (status {status})")

    def __call__(self, hw: np.ndarray) -> np.ndarray:
        hw = np.ascontiguousarray(hw, dtype=np.float32)
        out = np.empty((len(hw), N_OUT), dtype=np.float32)
        self.run_into(hw, out)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
