"""Dataset resolution: globs, missing files and foreign keys fail early with the dataset named."""

import pytest

from l1refit.config.datasets import check_datasets, file_datasets, resolve_paths, synthetic_datasets
from l1refit.errors import ConfigError


def test_globs_expand_sorted_and_deduplicated(tmp_path):
    for name in ("b.root", "a.root", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    files = resolve_paths("mine", ["*.root", "a.root", "root://eos.example//x.root"], tmp_path)
    assert files == ["a.root", "b.root", "root://eos.example//x.root"]


def test_glob_matching_nothing_names_dataset_and_pattern(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset 'mine': glob 'nope/\*\.root' matches no file"):
        resolve_paths("mine", ["nope/*.root"], tmp_path)


def test_missing_plain_file(tmp_path):
    with pytest.raises(ConfigError, match=r"input file 'gone.dat' not found"):
        resolve_paths("mine", ["gone.dat"], tmp_path)


def test_foreign_keys_are_rejected_with_their_path():
    with pytest.raises(ConfigError, match=r"datasets.zb.paths: only applies to 'source: files'"):
        check_datasets({"zb": {"source": "synthetic", "paths": ["x"]}})
    with pytest.raises(ConfigError, match=r"datasets.d.seed: only applies to 'source: synthetic'"):
        check_datasets({"d": {"source": "files", "format": "l1ntuple", "paths": ["x"], "seed": 1}})
    with pytest.raises(ConfigError, match=r"datasets.d.l1_tree: only applies to 'format: l1ntuple'"):
        check_datasets({"d": {"source": "files", "format": "scouting-run2", "paths": ["x"], "l1_tree": "t"}})


def test_split_by_source():
    ds = {"a": {"source": "files"}, "b": {"source": "synthetic"}}
    assert list(file_datasets(ds)) == ["a"] and list(synthetic_datasets(ds)) == ["b"]
