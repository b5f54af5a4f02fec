"""l1refit.formats.output: atomic writes, and temporaries of killed writers cleaned by the next writer."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from l1refit.formats.output import atomic_path, remove_stale_temporaries, write_csv

KILLED_WRITER = """
import sys, time
from l1refit.formats.output import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"x" * 100000)
    print(tmp, flush=True)
    time.sleep(60)
"""


def test_failed_block_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.csv") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_temporary_of_a_sigkilled_writer_is_removed_by_the_next_writer(tmp_path):
    final = tmp_path / "0.cutflow.csv"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(final)], stdout=subprocess.PIPE, text=True)
    tmp = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert os.path.exists(tmp) and not final.exists()  # what a SIGKILL leaves behind
    write_csv(pd.DataFrame({"a": [1]}), final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.cutflow.csv"]


def test_temporaries_of_running_writers_and_other_files_are_kept(tmp_path):
    final = tmp_path / "skim.parquet"
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        running = tmp_path / f".skim.tmp{alive.pid}.parquet"
        other = tmp_path / ".skim.tmpabc.parquet"  # not one of ours: no pid
        sibling = tmp_path / f".skim2.tmp{alive.pid + 10**6}.parquet"  # another file's temporary
        for path in (running, other, sibling):
            path.write_bytes(b"x")
        time.sleep(0.1)
        assert remove_stale_temporaries(final) == []
        assert running.exists() and other.exists() and sibling.exists()
    finally:
        alive.kill()
        alive.wait()
    assert remove_stale_temporaries(final) == [running]
