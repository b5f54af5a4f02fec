"""l1refit.stages.runner: how a rule's named items reach its stage function, and what the log records."""

from types import SimpleNamespace

import pytest

from l1refit.stages.runner import job_arguments, run


def stage(*, skim, spec, model, history, threads=1):
    return skim, spec, model, history, threads


def job(tmp_path, **params):
    return SimpleNamespace(
        input={"skim": "in.parquet"},
        output={"model": "m.pt", "history": "h.csv"},
        params={"spec": {"id": "A"}, **params},
        threads=3,
        log=[str(tmp_path / "job.log")],
        rule="train",
        wildcards={"model": "A"},
    )


def test_named_items_and_threads_become_keyword_arguments(tmp_path):
    assert job_arguments(stage, job(tmp_path)) == {
        "skim": "in.parquet", "spec": {"id": "A"}, "model": "m.pt", "history": "h.csv", "threads": 3,
    }  # fmt: skip


def test_a_declared_item_the_stage_does_not_take_is_an_error(tmp_path):
    with pytest.raises(TypeError, match="takes no argument 'extra' declared by its rule"):
        job_arguments(stage, job(tmp_path, extra=1))


def test_an_argument_the_rule_does_not_declare_is_an_error(tmp_path):
    bare = job(tmp_path)
    bare.output = {"model": "m.pt"}
    with pytest.raises(TypeError, match="needs 'history', which its rule does not declare"):
        job_arguments(stage, bare)


def test_a_name_declared_twice_is_an_error(tmp_path):
    with pytest.raises(TypeError, match="'model' is declared twice"):
        job_arguments(stage, job(tmp_path, model="x"))


def test_the_log_gets_timestamped_lines_and_the_resource_record(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    assert run(stage, job(tmp_path))[0] == "in.parquet"
    lines = (tmp_path / "job.log").read_text().splitlines()
    assert lines[0].endswith("rule train (model=A): stage") and lines[0][:4].isdigit()
    assert "resources: wall" in lines[-1] and "cpu" in lines[-1] and "peak rss" in lines[-1]


def test_a_failing_stage_records_the_failure_and_raises(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)

    def broken(*, skim, spec, model, history):
        raise ValueError("bad skim")

    with pytest.raises(ValueError, match="bad skim"):
        run(broken, job(tmp_path))
    assert "failed after wall" in (tmp_path / "job.log").read_text()
