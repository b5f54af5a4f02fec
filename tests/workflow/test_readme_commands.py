"""Every `snakemake` and `l1refit` command written in README.md and config/README.md works as written.

Snakemake commands run as dry runs (`-n`) in the repository, with the shipped configs; `l1refit` commands run for
real where they are quick (inspect, convert, --help) and are parsed by the command's own parser where they would
take minutes (calibrate) or need a trained model (refit). Placeholders (FILE, INPUT, OUTPUT) become test files.
"""

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from l1refit.cli import _parser, main

pytestmark = pytest.mark.workflow
REPO = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "config/README.md")


def written_commands(text: str) -> list[str]:
    """Commands from ```bash blocks (continuations joined, comments dropped) and from inline `code` spans."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if re.match(r"(snakemake|l1refit)\b", line):
                found.append(line)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    found += [span for span in re.findall(r"`((?:snakemake|l1refit) [^`]+)`", prose)]
    return list(dict.fromkeys(found))


COMMANDS = [(doc, command) for doc in DOCS for command in written_commands((REPO / doc).read_text())]


def test_the_documents_have_commands():
    tools = {command.split()[0] for _, command in COMMANDS}
    assert tools == {"snakemake", "l1refit"} and len(COMMANDS) > 15, COMMANDS


# `snakemake --report` needs the outputs of a run: test_training_workflow.py::test_report runs it after one.
SNAKEMAKE = [c for c in COMMANDS if c[1].startswith("snakemake") and "--report" not in c[1]]


def dry_run(command: str, cache: Path) -> subprocess.CompletedProcess:
    args = shlex.split(command)[1:]
    if "--unlock" not in args and "-n" not in args:
        args.append("-n")
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory):
    """Every documented snakemake command run once, two at a time (each is one mostly single-threaded process)."""
    cache = tmp_path_factory.mktemp("cache")
    commands = [command for _, command in SNAKEMAKE if "--unlock" not in command]
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(commands, pool.map(lambda c: dry_run(c, cache), commands), strict=True))
    # --unlock last, alone: it must not run while another process holds the lock
    for command in (command for _, command in SNAKEMAKE if "--unlock" in command):
        results[command] = dry_run(command, cache)
    return results


@pytest.mark.parametrize(("doc", "command"), SNAKEMAKE)
def test_snakemake_command(doc, command, dry_runs):
    proc = dry_runs[command]
    assert proc.returncode == 0, f"{doc}: `{command}` failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def l1refit_argv(command: str, tmp_path: Path) -> list[str]:
    fixture = str(REPO / "tests/data/cmssw/l1ntuple_cmssw_layout.root")
    out = str(tmp_path / "out.parquet")
    places = {"FILE": fixture, "INPUT": fixture, "OUTPUT": out, "OUTPUT.parquet": out,
              "fitted.yaml": str(tmp_path / "fitted.yaml")}  # fmt: skip
    return [places.get(word, word) for word in shlex.split(command)[1:]]


@pytest.mark.parametrize(("doc", "command"), [c for c in COMMANDS if c[1].startswith("l1refit")])
def test_l1refit_command(doc, command, tmp_path, capsys):
    argv = l1refit_argv(command, tmp_path)
    if len(argv) == 1 and argv[0] != "--help":  # a command named in prose: it must exist
        with pytest.raises(SystemExit) as exit_:
            main([argv[0], "--help"])
        assert exit_.value.code == 0
    elif argv[0] in {"inspect", "convert"}:
        assert main(argv) == 0, f"{doc}: `{command}` failed: {capsys.readouterr().err}"
    elif argv == ["--help"]:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    else:  # minutes of work, or a trained model: the arguments must parse as written
        args = _parser().parse_args(argv)
        assert callable(args.handler), command
