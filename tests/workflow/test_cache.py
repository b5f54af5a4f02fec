"""Between-workflow caching (--cache) and recovery from a killed run (--rerun-incomplete of the default profile)."""

import os
import re
import signal
import subprocess
import sys
import time
from base64 import urlsafe_b64encode
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.workflow

# Every output of the cacheable jobs of SMALL, with the log each job writes when it runs.
CACHED_OUTPUTS = {
    "generate": (["results/ntuples/zerobias/0.root"], "logs/generate/zerobias/0.log"),
    "skim": (["results/skims/zerobias/0.parquet", "results/skims/zerobias/0.cutflow.csv",
              "results/skims/zerobias/0.candidates.parquet"], "logs/skim/zerobias/0.log"),
    **{
        f"train {sub}": ([f"results/models/A/{sub}/{name}" for name in ("model.pt", "history.csv", "loss.png")],
                         f"logs/train/A/{sub}.log")
        for sub in ("fold0", "fold1", "final")
    },
}  # fmt: skip
# Downstream of the cached jobs and not cached: they run in every directory.
DOWNSTREAM = ["results/skims/zerobias.parquet", "results/predictions/A/fold0.parquet",
              "results/predictions/A/fold1.parquet"]  # fmt: skip
TARGETS = ["results/models/A/final/model.pt", *DOWNSTREAM]


@pytest.fixture(scope="module")
def cached_runs(tmp_path_factory, snakemake, write_config, small):
    """The same config in directory a (fills an empty cache) and then in directory b (takes from it)."""
    root = tmp_path_factory.mktemp("cache")
    cache, a, b = root / "cache", root / "a", root / "b"
    cache.mkdir()
    config = write_config(root / "config.yaml", small)

    def run_cached(workdir, config, *args):
        return snakemake("--cache", "--cores", "2", f"--configfile={config}", "--directory", str(workdir), *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SNAKEMAKE_OUTPUT_CACHE", str(cache))
        run_a = run_cached(a, config, *TARGETS)
        entries_a = sorted(p.name for p in cache.iterdir())
        dry_b = run_cached(b, config, "-n", *TARGETS)
        run_b = run_cached(b, config, *TARGETS)
        changed = write_config(root / "changed.yaml", {**small, "training": {**small["training"], "epochs": 2}})
        dry_changed = run_cached(root / "c", changed, "-n", *TARGETS)
    return {"cache": cache, "a": a, "b": b, "run_a": run_a, "entries_a": entries_a, "dry_b": dry_b, "run_b": run_b,
            "dry_changed": dry_changed}  # fmt: skip


def cache_lines(proc, verb):
    """Outputs that a dry run reports as 'obtained from' / 'written to' the between-workflow cache."""
    return set(
        re.findall(rf"Output file (\S+) will be {verb} global between-workflow cache", proc.stdout + proc.stderr)
    )


def first_outputs():
    """The first output of every cacheable job: the file Snakemake names in its cache messages."""
    return {outputs[0] for outputs, _ in CACHED_OUTPUTS.values()}


def test_first_directory_fills_the_cache(cached_runs):
    a, cache = cached_runs["a"], cached_runs["cache"]
    text = cached_runs["run_a"].stdout + cached_runs["run_a"].stderr
    # 1 ntuple + 3 skim files (skim, cutflow, candidates) + 3 x (model, history, plot): one entry per output, named
    # by the job's key
    assert len(cached_runs["entries_a"]) == sum(len(outputs) for outputs, _ in CACHED_OUTPUTS.values()) == 13
    for outputs, log in CACHED_OUTPUTS.values():
        assert (a / log).stat().st_size > 0, log  # the job ran here and wrote its progress
        for path in outputs:
            assert f"Moving output file {path} to cache." in text, path
            assert (a / path).is_symlink() and (a / path).resolve().parent == cache.resolve(), path
    # a cached job has no benchmark (Snakemake forbids both) but its log records its resources; the others keep
    # their benchmarks
    assert not (a / "logs/benchmarks/generate").exists() and not (a / "logs/benchmarks/train").exists()
    for _, log in CACHED_OUTPUTS.values():
        assert "resources: wall" in (a / log).read_text().splitlines()[-1], log
    assert (a / "logs/benchmarks/skim/zerobias.merge.tsv").exists()


def test_second_directory_takes_cached_jobs_from_the_cache(cached_runs):
    b = cached_runs["b"]
    # the dry run already knows every cacheable job is in the cache, and no other job is
    assert cache_lines(cached_runs["dry_b"], "obtained from") == first_outputs()
    assert not cache_lines(cached_runs["dry_b"], "written to")
    text = cached_runs["run_b"].stdout + cached_runs["run_b"].stderr
    assert "to cache." not in text  # nothing new stored
    assert sorted(p.name for p in cached_runs["cache"].iterdir()) == cached_runs["entries_a"]
    for outputs, log in CACHED_OUTPUTS.values():
        # Snakemake creates the log file of a restored job, but the script never writes to it
        assert not (b / log).exists() or (b / log).stat().st_size == 0, f"{log}: the job ran instead of being restored"
        for path in outputs:
            assert f"Symlinking output file {path} from cache." in text, path
    # the jobs that are not cached ran here, on the restored inputs
    assert (b / "logs/benchmarks/skim/zerobias.merge.tsv").exists()  # merge: benchmarked, writes no log
    for log in ("logs/predict/A/fold0.log", "logs/predict/A/fold1.log"):
        assert (b / log).stat().st_size > 0, log


def test_second_directory_outputs_are_identical(cached_runs):
    a, b = cached_runs["a"], cached_runs["b"]
    for outputs, _ in CACHED_OUTPUTS.values():
        for path in outputs:
            assert (b / path).read_bytes() == (a / path).read_bytes(), path
    # recomputed in b from the restored inputs
    for path in DOWNSTREAM:
        pd.testing.assert_frame_equal(pd.read_parquet(b / path), pd.read_parquet(a / path))
    path = "results/tables/cutflow_zerobias.csv"
    assert (b / path).read_bytes() == (a / path).read_bytes()


def test_changed_training_setting_misses_the_cache_for_training_only(cached_runs):
    proc = cached_runs["dry_changed"]
    trained = {outputs[0] for key, (outputs, _) in CACHED_OUTPUTS.items() if key.startswith("train")}
    assert cache_lines(proc, "written to") == trained
    assert cache_lines(proc, "obtained from") == first_outputs() - trained


def snapshot(workdir):
    """{path: mtime_ns} of every file under results/ (lstat: a symlink counts as itself)."""
    return {
        str(p.relative_to(workdir)): p.lstat().st_mtime_ns for p in (workdir / "results").rglob("*") if not p.is_dir()
    }


def marked_incomplete(workdir, path):
    """Whether Snakemake marked an output incomplete (its job started and never finished)."""
    return (workdir / ".snakemake/incomplete" / urlsafe_b64encode(path.encode()).decode()).exists()


def test_killed_run_resumes_without_redoing_finished_jobs(tmp_path, repo, snakemake, write_config, small):
    workdir = tmp_path / "w"
    config = write_config(tmp_path / "config.yaml", small)
    targets = ["results/tables/table1.csv", "results/tables/table2.csv"]
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--cores", "2",
           f"--configfile={config}", "--directory", str(workdir), *targets]  # fmt: skip
    with open(tmp_path / "killed.log", "w") as out:
        proc = subprocess.Popen(cmd, cwd=repo, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list((workdir / "results/models").glob("A/*/model.pt")):
            assert proc.poll() is None, (
                "the run ended before a model was written:\n" + (tmp_path / "killed.log").read_text()
            )
            assert time.monotonic() < deadline, "no model.pt within 300 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its running jobs, mid-run
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (workdir / "results/tables/table2.csv").exists()
    before = snapshot(workdir)
    incomplete = {path for path in before if marked_incomplete(workdir, path)}
    assert incomplete, "no job was writing its outputs at the kill"
    # temporaries of the killed writers (.NAME.tmpPID.EXT): the rerun's writers remove them
    stale = {path for path in before if re.fullmatch(r"\.[^/]+\.tmp\d+\.[^/]+", Path(path).name)}
    finished = {path: mtime for path, mtime in before.items() if path not in incomplete | stale}
    for path in ("results/ntuples/zerobias/0.root", "results/skims/zerobias/0.parquet",
                 "results/skims/zerobias.parquet"):  # fmt: skip
        assert path in finished, path  # upstream of every training job, so done before the kill

    locked = snakemake("--cores", "2", f"--configfile={config}", "--directory", str(workdir), *targets, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr  # the message says what to do
    snakemake("--unlock", f"--configfile={config}", "--directory", str(workdir))  # a killed run keeps its lock
    # no --rerun-incomplete here: the default profile sets it (without it this run stops at the incomplete files)
    rerun = snakemake("--cores", "2", f"--configfile={config}", "--directory", str(workdir), *targets)
    after = snapshot(workdir)
    for path, mtime in finished.items():
        assert after[path] == mtime, f"{path} was recomputed"
    for path in incomplete:
        assert after[path] != before[path], f"{path} of a killed job was kept"
    assert not stale & set(after), f"temporaries of killed writers left behind: {sorted(stale & set(after))}"
    assert pd.read_csv(workdir / "results/tables/table2.csv").model.tolist() == ["GMT", "A", "LUT"]
    assert pd.read_csv(workdir / "results/tables/table1.csv").model.tolist() == ["A"]
    # a run without --cache: no word of the cache
    text = rerun.stdout + rerun.stderr
    # (Snakemake still says which rules are eligible for caching: they are declared once, with `cache: True`)
    assert "to cache." not in text and "from cache." not in text and "between-workflow cache" not in text
