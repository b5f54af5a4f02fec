"""The `l1refit` command: a failure while writing is one line naming the output, with a non-zero exit."""

import resource
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests/data/cmssw/l1ntuple_cmssw_layout.root"


def l1refit(*args, file_size_limit=None):
    def limit():  # a full disk, as the writer sees it: writes past the limit fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([sys.executable, "-m", "l1refit.cli", *map(str, args)], capture_output=True, text=True,
                          preexec_fn=limit if file_size_limit else None, timeout=300)  # fmt: skip


def test_write_failure_is_one_line_naming_the_output_and_leaves_no_file(tmp_path):
    out = tmp_path / "muons.parquet"
    proc = l1refit("convert", FIXTURE, out, file_size_limit=20_000)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("l1refit: error")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(out) in lines[0] or ".muons.tmp" in lines[0]
    assert "File too large" in lines[0] or "too large" in lines[0].lower()
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary


def test_unwritable_output_directory_is_one_line(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where a directory should be")
    proc = l1refit("convert", FIXTURE, blocker / "muons.parquet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"l1refit: error: {blocker}")
