"""The ``l1refit`` command: inspect, convert and refit files (every subcommand has ``--help``).

Errors in the input (missing file, wrong format, corrupt data) print one line naming the file and exit with
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from l1refit import __version__, logs
from l1refit.config.loading import defaults
from l1refit.deploy import friend
from l1refit.deploy.refit import COMPRESSIONS, DEFAULT_CHUNK_SIZE, DEFAULT_COMPRESSION, refit_file
from l1refit.errors import L1RefitError
from l1refit.formats import l1ntuple
from l1refit.formats.convert import convert
from l1refit.formats.inventory import format_summary, inspect_file
from l1refit.formats.registry import CONVERT_TO, EVENT_FORMATS, REFIT_FORMATS

IO_DEFAULTS = defaults("io")  # the config schema's reading settings (config/README.md `io`)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l1refit",
        description="Re-fit CMS Level-1 trigger muons: tools for L1Ntuples and L1 scouting raw files.",
    )
    parser.add_argument("--version", action="version", version=f"l1refit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ins = sub.add_parser(
        "inspect",
        help="what a file is: format, era, events/orbits, muon count, first records",
        description=(
            "Detect the format of each FILE (L1Ntuple ROOT, Run-2 or Run-3 scouting raw, CMSSW L1 scouting EDM or "
            "L1 scouting NanoAOD) and summarise it."
        ),
    )
    ins.add_argument("files", nargs="+", metavar="FILE")
    ins.add_argument("--format", choices=EVENT_FORMATS, help="expect this format (default: detect it)")
    ins.add_argument("--first", type=int, default=3, metavar="N", help="records/muons to show (default 3)")
    ins.add_argument("--l1-tree", default=l1ntuple.TREES["l1"], help="L1 muon tree of an L1Ntuple")
    ins.add_argument("--json", action="store_true", help="print the summary as JSON")
    ins.set_defaults(handler=_inspect)

    conv = sub.add_parser(
        "convert",
        help="convert between scouting raw, L1Ntuple, NanoAOD, L1 scouting files and Parquet",
        description=(
            "Convert INPUT to OUTPUT. The output format follows OUTPUT's suffix (.parquet, .root = L1Ntuple, .dat, "
            ".dat.bz2, .raw) unless --to says otherwise (--to l1scouting-nano for an L1 scouting NanoAOD from an "
            "L1Ntuple, a scouting raw or an L1 scouting EDM file). NanoAOD and L1 scouting files convert to Parquet. "
            "Reading is chunked; conversion to scouting raw holds the output in memory."
        ),
    )
    conv.add_argument("input", metavar="INPUT")
    conv.add_argument("output", metavar="OUTPUT")
    conv.add_argument("--to", choices=CONVERT_TO, help="output format (default: from OUTPUT's suffix)")
    conv.add_argument("--from", dest="src_format", choices=EVENT_FORMATS, help="input format (default: detect it)")
    conv.add_argument("--run", type=int, help="run number written to scouting outputs (default: the input's)")
    conv.add_argument(
        "--lumi", type=int, default=0,
        help="lumisection of a Run-3 scouting output, and of an L1 scouting NanoAOD made from scouting raw (default 0)",
    )  # fmt: skip
    conv.add_argument(
        "--chunk-bytes", type=int, default=IO_DEFAULTS["chunk_bytes"], help="scouting read chunk in bytes"
    )
    conv.add_argument("--step-size", type=int, default=IO_DEFAULTS["step_size"], help="L1Ntuple events per chunk")
    conv.set_defaults(handler=_convert)

    ref = sub.add_parser(
        "refit",
        help="apply an exported ONNX model or the FPGA firmware to every L1 muon of a file: corrected phi, eta, pT",
        description=(
            "Refit every L1 muon of INPUT (skim Parquet, L1Ntuple ROOT, NanoAOD, Run-2 or Run-3 scouting raw, CMSSW "
            "L1 scouting EDM or L1 scouting NanoAOD) with the exported model and write OUTPUT: Parquet with one row "
            "per muon (the event identity, the hardware integers, the original l1_pt, l1_eta, l1_phi and the "
            "refit_pt, refit_eta, refit_phi beside them), or, for an OUTPUT ending in .root and a NanoAOD or L1 "
            "scouting NanoAOD INPUT, a friend tree with the input's entries (nL1MuRefit, L1MuRefit_pt/eta/phi). "
            "With --firmware DESIGN.json instead of --model, the refit values are the fixed-point firmware's, "
            "emulated bit for bit as the board computes them (docs/deploy.md §6.7). Streams in chunks; OUTPUT "
            "appears only when the whole input was refitted."
        ),
    )
    ref.add_argument("input", metavar="INPUT")
    ref.add_argument("output", metavar="OUTPUT")
    engine = ref.add_mutually_exclusive_group(required=True)
    engine.add_argument("--model", metavar="M.onnx", help="ONNX model from l1refit.deploy.onnx_export")
    engine.add_argument(
        "--firmware", metavar="DESIGN.json",
        help="FPGA design (results/fpga/{model}/design.json): refit with the emulated fixed-point firmware",
    )  # fmt: skip
    ref.add_argument(
        "--fakeid", metavar="F.onnx|design.json",
        help="fake classifier (results/onnx/fakeid.onnx, or its emulated firmware results/fpga/fakeid/design.json): "
        "adds fake_prob, the probability that a selected muon is fake",
    )  # fmt: skip
    ref.add_argument("--format", choices=REFIT_FORMATS, help="expect this input format (default: detect it)")
    ref.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="N",
        help=f"Parquet rows, ROOT entries or (about) scouting muons per chunk (default {DEFAULT_CHUNK_SIZE})",
    )  # fmt: skip
    ref.add_argument(
        "--threads", type=int, default=1, metavar="N",
        help="onnxruntime intra-op threads, or the emulator's BLAS threads with --firmware (default 1)",
    )  # fmt: skip
    ref.add_argument(
        "--compression", choices=COMPRESSIONS, default=DEFAULT_COMPRESSION,
        help=f"Parquet OUTPUT codec (default {DEFAULT_COMPRESSION}; none writes faster, twice the size)",
    )  # fmt: skip
    ref.add_argument(
        "--exported-graph", action="store_true",
        help="run the ONNX graph as exported, not its optimised equivalent (docs/deploy.md §3)",
    )  # fmt: skip
    ref.add_argument(
        "--kernel", action="store_true",
        help="run the optimised graph with the compiled kernel (needs a C compiler; docs/deploy.md §3.1)",
    )  # fmt: skip
    ref.add_argument("--l1-tree", default=l1ntuple.TREES["l1"], help="L1 muon tree of an L1Ntuple")
    ref.add_argument(
        "--friend-tree", default=friend.DEFAULT_TREE, metavar="NAME",
        help=f"tree name of a .root (friend-tree) OUTPUT (default {friend.DEFAULT_TREE})",
    )  # fmt: skip
    ref.set_defaults(handler=_refit)

    cal = sub.add_parser(
        "calibrate",
        help="fit the synthetic detector to the paper's GMT row and write generator_calibration.csv",
        description=(
            "Fit the free generator parameters (docs/physics.md §6) so the synthetic GMT-vs-offline metrics "
            "reproduce the paper's GMT row, print the fitted generator section as YAML (commit it as the config "
            "defaults), and write the calibration table with the Bayes-optimal limit. --no-fit only evaluates."
        ),
    )
    cal.add_argument(
        "--config", default="config/config.yaml", help="overlay merged over config/config.yaml: the starting generator"
    )
    cal.add_argument("--muons", type=int, default=300_000, help="muons generated per fit evaluation")
    cal.add_argument("--seed", type=int, default=7, help="seed of the fit sample (common random numbers)")
    cal.add_argument("--max-evals", type=int, default=250, help="objective evaluations per fit stage")
    cal.add_argument("--no-fit", action="store_true", help="only evaluate the configured parameters")
    cal.add_argument("--table", default="results/tables/generator_calibration.csv", help="output table (CSV)")
    cal.add_argument("--params-out", help="write the fitted generator section to this YAML file (default: stdout)")
    cal.set_defaults(handler=_calibrate)
    return parser


def _inspect(args) -> None:
    summaries = []
    for path in args.files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the summary lists the warnings itself
            summary = inspect_file(path, args.format, n_first=args.first, l1_tree=args.l1_tree)
        if args.json:
            summaries.append(summary)
        else:
            print(format_summary(summary))
    if args.json:
        print(json.dumps(summaries if len(summaries) > 1 else summaries[0], indent=1, default=str))


def _convert(args) -> None:
    print(f"converting {args.input} -> {args.output}", file=sys.stderr)
    counts = convert(
        args.input,
        args.output,
        to=args.to,
        src_format=args.src_format,
        run=args.run,
        lumi=args.lumi,
        chunk_bytes=args.chunk_bytes,
        step_size=args.step_size,
    )
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))


def _refit(args) -> None:
    engine = args.model or f"the firmware {args.firmware}"
    print(f"refitting {args.input} with {engine} -> {args.output}", file=sys.stderr)
    counts = refit_file(
        args.model,
        args.input,
        args.output,
        firmware=args.firmware,
        fmt=args.format,
        chunk_size=args.chunk_size,
        threads=args.threads,
        l1_tree=args.l1_tree,
        friend_tree=args.friend_tree,
        compression=args.compression,
        optimise=not args.exported_graph,
        kernel=args.kernel,
        fakeid=args.fakeid,
    )
    entries = f"entries: {counts['entries']}, " if "entries" in counts else ""
    print(f"format: {counts['format']}, {entries}muons: {counts['muons']}, chunks: {counts['chunks']}, "
          f"graph: {counts['graph']}, engine: {counts['engine']}, seconds: {counts['seconds']:.1f}")  # fmt: skip


def _calibrate(args) -> None:
    import yaml

    from l1refit.analysis.metrics import Windows
    from l1refit.config.loading import load
    from l1refit.simulate.calibration import fit, write_calibration_table

    config = load([args.config])  # an overlay on config/config.yaml, validated, every default filled in
    gen = config["generator"]
    if not args.no_fit:
        gen, _ = fit(gen, selection=config["selection"], n=args.muons, seed=args.seed, max_evals=args.max_evals)
        text = yaml.safe_dump({"generator": gen}, sort_keys=False)
        if args.params_out:
            with open(args.params_out, "w") as stream:
                stream.write(text)
            print(f"fitted generator parameters written to {args.params_out}")
        else:
            print(text)
    cal = config["calibration"]
    write_calibration_table(
        args.table, gen, selection=config["selection"], n=cal["muons"], seed=cal["seed"], n_bayes=cal["bayes_muons"],
        bayes_seed=cal["bayes_seed"], windows=Windows.from_config(config["metrics"]),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(sys.stderr)  # progress lines of long commands (a bar on a terminal) go to stderr
    try:
        args.handler(args)
    except (L1RefitError, FileNotFoundError, ValueError) as err:
        print(f"l1refit: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, unwritable output, ...: the path and the system's reason, no traceback
        path = err.filename or getattr(args, "output", None) or getattr(args, "table", None)
        print(f"l1refit: error: {path}: {err.strerror or err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
