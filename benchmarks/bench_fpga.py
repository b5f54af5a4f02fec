"""FPGA design costs: hls4ml compile time per precision, emulator speed on one core, da4ml estimates.

Targets (issue 15): emulation >= 1 M inferences/s on one core for >= 1 M muons, the hls4ml compiles of a precision
scan <= 2 min in total, peak RSS < 2 GB. Without ``--model`` a random-weight MLP of the paper's shape (3 x 32,
BatchNorm, min-max scalers over the skims' integer ranges) stands in for a trained one.

    python benchmarks/bench_fpga.py [--model results/models/B/final.pt] [--muons 1000000] [--da4ml]
                                    [--precisions "ap_fixed<12,6,AP_RND,AP_SAT>" ...] [--units hardware]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from timing import median_seconds  # noqa: E402

from l1refit.deploy.fpga import hls, rtl  # noqa: E402
from l1refit.deploy.fpga.design import build_design  # noqa: E402
from l1refit.deploy.fpga.emulate import emulate  # noqa: E402
from l1refit.deploy.fpga.firmware import firmware_model  # noqa: E402
from l1refit.deploy.hw_inputs import random_hw  # noqa: E402
from l1refit.ml.checkpoint import TrainedModel  # noqa: E402
from l1refit.ml.network import build_mlp  # noqa: E402
from l1refit.ml.scaling import MinMaxScaler  # noqa: E402
from l1refit.ml.spec import ModelSpec  # noqa: E402

PRECISIONS = [f"ap_fixed<{w},6,AP_RND,AP_SAT>" for w in range(10, 19, 2)]


def random_model() -> TrainedModel:
    torch.manual_seed(0)
    spec = ModelSpec("logcosh", "adadelta", None, "relu", "linear")  # model B's architecture
    x = random_hw(100_000).astype(np.float64)
    y = np.column_stack([np.linspace(-0.3, 0.3, 100), np.linspace(-0.1, 0.1, 100), np.linspace(-20, 20, 100)])
    return TrainedModel(build_mlp(4, 3, spec), MinMaxScaler().fit(x), MinMaxScaler(high=30.0).fit(y), spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--muons", type=int, default=1_000_000)
    parser.add_argument("--precisions", nargs="+", default=PRECISIONS)
    parser.add_argument("--units", default="hardware", choices=("physical", "hardware"))
    parser.add_argument("--da4ml", action="store_true", help="also trace with da4ml (5-10 s per precision)")
    parser.add_argument("--latency-cutoff", type=float, default=5.0)
    args = parser.parse_args()
    model = TrainedModel.load(args.model) if args.model else random_model()
    firmware = firmware_model(model, "bench", units=args.units)
    hw = random_hw(args.muons, model.inputs, seed=1)
    compile_total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions:
            t0 = time.perf_counter()
            project = Path(tmp) / str(len(os.listdir(tmp)))
            hls_model = hls.convert(firmware, precision, project, part="xcvu9p-flga2104-2L-e", clock_period=4.0)
            seconds = time.perf_counter() - t0
            compile_total += seconds
            design = build_design(firmware, precision)
            checked = hls.check_bit_exact(design, hls_model, hw[:2000])
            with threadpool_limits(1):
                emulation = median_seconds(lambda design=design: emulate(design, hw), 3)
            line = (f"{precision}: hls4ml convert+compile {seconds:.1f} s; emulator {args.muons / emulation / 1e6:.2f} "
                    f"M/s on one core; bit-exact with the C simulation on {checked} inputs")  # fmt: skip
            if args.da4ml:
                t0 = time.perf_counter()
                est = rtl.estimate(rtl.trace(design), args.latency_cutoff)
                line += (f"; da4ml ({time.perf_counter() - t0:.1f} s): {est['luts_estimate']:.0f} LUTs, "
                         f"{est['ffs_estimate']:.0f} FFs, {est['stages']} stages at cut-off "
                         f"{args.latency_cutoff}")  # fmt: skip
            print(line, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"hls4ml compiles in total: {compile_total:.1f} s; peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
