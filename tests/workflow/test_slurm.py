"""The Slurm profile on a real single-node Slurm: same tables as a local run, failed and cancelled jobs fail the run.

Needs root on Debian 12 (scripts/slurm-cluster installs munge/slurmctld/slurmd with apt-get and runs them) and is
therefore opt-in:  CI=true pytest -s tests/workflow/test_slurm.py   (or L1REFIT_SLURM_TEST=1). Takes about 3.5 minutes;
the cluster is stopped at the end (scripts/slurm-cluster stop), also when a test fails.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ENABLED = os.environ.get("CI", "").lower() == "true" or os.environ.get("L1REFIT_SLURM_TEST") == "1"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.skipif(
        not (ENABLED and IS_ROOT),
        reason="starts a real Slurm cluster: run as root on Debian with "
        "`CI=true pytest -s tests/workflow/test_slurm.py` (or L1REFIT_SLURM_TEST=1)",
    ),
]

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "scripts" / "slurm-cluster"
PROFILE = REPO / "profiles" / "slurm"
# Faster polling than the profile's for this test cluster (MinJobAge 300 s >= 3 x 1 s keeps squeue status valid).
# The plugin checks a new job after init seconds, then backs off by 10 s per check that finds nothing finished.
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1")


@pytest.fixture
def slurm_tiny(tiny):
    """The tiny config without the dimuon dataset, with one model, one epoch and the smallest benchmark: every
    stage still runs, and the training, baseline and benchmark jobs go through Slurm with the profile's
    set-resources."""
    return {
        **tiny,
        "datasets": {"zerobias": {**tiny["datasets"]["zerobias"], "events_per_file": 4000}},
        "training": {**tiny["training"], "epochs": 1},
        "models": {"A": tiny["models"]["A"]},
        "fakeid": {"enabled": False},
        "analysis_model": "A",
        "plots": {"mass_dataset": None, "turn_on_thresholds": [5.0]},
        "benchmark": {
            "batch_sizes": [256],
            "threads": [1],
            "rows": 1024,
            "repeats": 1,
            "precision_rows": 1000,
            "sgemm_size": 256,
        },
        "calibration": {"muons": 10000, "seed": 1, "bayes_muons": 10000, "bayes_seed": 2},
    }


FAILING = """
rule all:
    input: "failed.txt"
    localrule: True

rule fail:
    output: "failed.txt"
    shell: "echo about to fail; exit 1"
"""

SLEEPING = """
rule all:
    input: "slept.txt"
    localrule: True

rule sleepy:
    output: "slept.txt"
    shell: "sleep 300; touch {output}"
"""


def snakemake_cmd(*args, snakefile=REPO / "Snakefile"):
    return [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), *args]


def run_snakemake(*args, snakefile=REPO / "Snakefile", timeout=600):
    """Snakemake as tests/test_workflow.py runs it, with a timeout that turns a hanging run into a failure."""
    start = time.monotonic()
    proc = subprocess.run(snakemake_cmd(*args, snakefile=snakefile), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    return proc, time.monotonic() - start


def squeue(*fields):
    """Rows of `squeue` with the given format fields (%i job id, %T state, %k comment)."""
    out = subprocess.run(["squeue", "-h", "-a", "-o", "|".join(fields)], capture_output=True, text=True, check=True)
    return [line.split("|") for line in out.stdout.splitlines()]


@pytest.fixture(scope="module")
def cluster():
    """A single-node Slurm for this module; stopped at teardown, also when a test or the start-up fails."""
    # under /tmp (world-searchable): munged runs as the munge user and must reach its socket in this directory
    state = tempfile.mkdtemp(prefix="l1refit-slurm-", dir="/tmp")
    try:
        proc = subprocess.run([str(CLUSTER), "start", state], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"could not start the Slurm cluster:\n{proc.stdout}\n{proc.stderr}")
        yield state
    finally:
        proc = subprocess.run([str(CLUSTER), "stop", state], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"could not stop the Slurm cluster:\n{proc.stdout}\n{proc.stderr}"
        shutil.rmtree(state, ignore_errors=True)


def test_tiny_workflow_on_slurm_matches_local_run(cluster, tmp_path, capsys, write_config, slurm_tiny):
    config = write_config(tmp_path / "config.yaml", slurm_tiny)
    local, on_slurm = tmp_path / "local", tmp_path / "slurm"
    # the local reference runs beside the Slurm run, which mostly waits for the scheduler
    start = time.monotonic()
    reference = subprocess.Popen(
        snakemake_cmd("--cores", "2", f"--configfile={config}", "--directory", str(local), "all"),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        proc, slurm_s = run_snakemake(
            "--profile", str(PROFILE), *FAST_STATUS, f"--configfile={config}", "--directory", str(on_slurm), "all"
        )
        local_out = reference.communicate(timeout=600)[0]
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()
    total_s = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert reference.returncode == 0, local_out
    with capsys.disabled():
        print(f"\n[test_slurm] tiny workflow through Slurm: {slurm_s:.1f} s wall time (with local run {total_s:.1f} s)")
    # every job but the local rules (table1, all) went through sbatch, training and benchmark included
    submitted = re.findall(r"has been submitted with SLURM jobid \d+ \(log: .*?/slurm_logs/rule_(\w+)/", out)
    assert {"generate", "skim", "merge", "train", "baseline", "predict", "table3"} <= set(submitted), out
    assert "table1" not in submitted
    tables = sorted(p.name for p in (local / "results/tables").glob("*.csv") if p.name != "table3.csv")
    assert {"table1.csv", "table2.csv", "int8_metrics.csv", "cutflow_zerobias.csv"} <= set(tables), tables
    for name in tables:
        assert (on_slurm / "results/tables" / name).read_bytes() == (local / "results/tables" / name).read_bytes(), name
    assert (on_slurm / "results/tables/table3.csv").stat().st_size > 0


def test_failing_job_fails_the_run(cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(FAILING)
    proc, seconds = run_snakemake(
        "--profile", str(PROFILE), *FAST_STATUS, "--directory", str(tmp_path), snakefile=tmp_path / "Snakefile",
        timeout=180,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Error in rule fail" in out and "FAILED" in out, out
    assert seconds < 150, f"the failed job was noticed only after {seconds:.0f} s"
    assert not (tmp_path / "failed.txt").exists()
    print(f"\n[test_slurm] the failed job ended the run after {seconds:.1f} s")


def test_cancelled_job_fails_the_run(cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(SLEEPING)
    cancelled = []

    def cancel_when_running():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # the executor puts the rule name into the job's comment (%k): rule_sleepy
            jobs = squeue("%i", "%T", "%k")
            running = [job for job, state, comment in jobs if state == "RUNNING" and comment == "rule_sleepy"]
            if running:
                subprocess.run(["scancel", running[0]], check=True)
                cancelled.append(running[0])
                return
            time.sleep(0.5)

    canceller = threading.Thread(target=cancel_when_running, daemon=True)
    canceller.start()
    proc, seconds = run_snakemake(
        "--profile", str(PROFILE), *FAST_STATUS, "--directory", str(tmp_path), snakefile=tmp_path / "Snakefile",
        timeout=240,
    )  # fmt: skip
    canceller.join(timeout=5)
    out = proc.stdout + proc.stderr
    assert cancelled, f"the sleeping job never ran:\n{out}"
    assert proc.returncode != 0, out
    assert "Error in rule sleepy" in out and "CANCELLED" in out, out
    assert seconds < 200, f"the cancelled job was noticed only after {seconds:.0f} s"
    assert not (tmp_path / "slept.txt").exists()
    print(f"\n[test_slurm] the cancelled job ended the run after {seconds:.1f} s")
