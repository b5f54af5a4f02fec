"""``l1refit refit`` to a ROOT friend tree: aligned entry by entry with its NanoAOD-like input (deploy/friend.py)."""

import json

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot

from l1refit.cli import main
from l1refit.deploy import friend
from l1refit.deploy.refit import load_model, refit_file
from l1refit.formats import l1scouting_write


@pytest.fixture(scope="module")
def nano_with_empty_entries(tmp_path_factory, l1scouting_rows):
    """An L1 scouting NanoAOD whose entries hold 0 to 3 muons (zeros included), written in two chunks."""
    rng = np.random.default_rng(11)
    counts = rng.choice([0, 0, 1, 2, 3], 700)
    rows = l1scouting_rows(int(counts.sum()), seed=4)
    n = len(counts)
    entries = {"run": np.full(n, 386000), "lumi": np.full(n, 7), "orbit": 100 + np.arange(n) // 5,
               "bx": 1 + np.arange(n) % 5 * 700}  # fmt: skip
    path = tmp_path_factory.mktemp("friend") / "scout_nano.root"
    cut, mu_cut = 300, int(counts[:300].sum())
    with l1scouting_write.NanoWriter(path) as writer:
        writer.extend({k: v[:cut] for k, v in entries.items()}, {k: v[:mu_cut] for k, v in rows.items()}, counts[:cut])
        writer.extend({k: v[cut:] for k, v in entries.items()}, {k: v[mu_cut:] for k, v in rows.items()}, counts[cut:])
    return path, counts, entries


def test_friend_tree_lines_up_with_its_input_entry_by_entry(exported, tmp_path, nano_with_empty_entries):
    _, onnx_path, _, _ = exported
    path, counts, entries = nano_with_empty_entries
    out = tmp_path / "refit.root"
    result = refit_file(onnx_path, path, out, chunk_size=128)
    assert (result["entries"], result["muons"], result["format"]) == (700, counts.sum(), "l1scouting-nano")
    assert result["chunks"] == 6  # 700 entries, 128 a chunk
    source = uproot.open(path)["Events"]
    tree = uproot.open(out)[friend.DEFAULT_TREE]
    assert tree.num_entries == source.num_entries == 700
    assert tree.typenames() == {
        "run": "uint32_t", "luminosityBlock": "uint32_t", "orbitNumber": "uint32_t", "bunchCrossing": "uint16_t",
        "nL1MuRefit": "int32_t", "L1MuRefit_pt": "float[]", "L1MuRefit_eta": "float[]", "L1MuRefit_phi": "float[]",
    }  # fmt: skip
    for name, key in (("orbitNumber", "orbit"), ("bunchCrossing", "bx"), ("run", "run")):  # the input's identity
        np.testing.assert_array_equal(tree[name].array(library="np"), entries[key], err_msg=name)
    n_refit = tree["nL1MuRefit"].array(library="np")
    np.testing.assert_array_equal(n_refit, source["nL1Mu"].array(library="np"))
    np.testing.assert_array_equal(n_refit, counts)
    assert (n_refit == 0).sum() > 100  # the empty entries are there too

    refit_file(onnx_path, path, tmp_path / "refit.parquet", chunk_size=128)
    table = pd.read_parquet(tmp_path / "refit.parquet")
    np.testing.assert_array_equal(table["orbit"], np.repeat(entries["orbit"], counts))  # row order = entry order
    np.testing.assert_array_equal(table["bx"], np.repeat(entries["bx"], counts))
    friend_values = tree.arrays(["L1MuRefit_pt", "L1MuRefit_eta", "L1MuRefit_phi"], how=dict)
    for field in ("pt", "eta", "phi"):
        jagged = friend_values[f"L1MuRefit_{field}"]
        np.testing.assert_array_equal(ak.num(jagged), counts)
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(jagged)), table[f"refit_{field}"], err_msg=field)
    model = load_model(onnx_path)  # and they are the model's output for the input's muons
    corrected = model(table[list(model.inputs)].to_numpy(np.float32))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(friend_values["L1MuRefit_pt"])), corrected[:, 2], rtol=1e-6)
    metadata = json.loads(str(uproot.open(out)[friend.METADATA_KEY]))
    assert metadata["l1refit.refit.input"] == str(path) and metadata["l1refit.refit.input_format"] == "l1scouting-nano"


def test_friend_tree_name_and_cli(exported, tmp_path, capsys, nano_with_empty_entries):
    _, onnx_path, _, _ = exported
    path, counts, _ = nano_with_empty_entries
    out = tmp_path / "refit.root"
    assert main(["refit", "--model", str(onnx_path), "--friend-tree", "Events", str(path), str(out)]) == 0
    assert f"format: l1scouting-nano, entries: 700, muons: {counts.sum()}" in capsys.readouterr().out
    assert uproot.open(out)["Events"].num_entries == 700
    assert main(["refit", "--model", str(onnx_path), "--friend-tree", "a/b", str(path), str(tmp_path / "x.root")]) == 2
    assert "friend tree name 'a/b'" in capsys.readouterr().err and not (tmp_path / "x.root").exists()


def test_empty_input_gives_an_empty_friend_tree(exported, tmp_path):
    _, onnx_path, _, _ = exported
    path = tmp_path / "empty.root"
    with l1scouting_write.NanoWriter(path):
        pass
    out = tmp_path / "refit.root"
    assert refit_file(onnx_path, path, out)["entries"] == 0
    tree = uproot.open(out)[friend.DEFAULT_TREE]
    assert tree.num_entries == 0 and {"nL1MuRefit", "L1MuRefit_pt", "orbitNumber"} <= set(tree.keys())


@pytest.mark.parametrize("which", ["l1ntuple", "l1scouting-edm", "scouting-run3"])
def test_root_output_of_an_input_without_nanoaod_entries_is_one_line(
    exported, tmp_path, capsys, which, cmssw_ntuple, l1scouting_edm
):
    _, onnx_path, _, _ = exported
    source = {"l1ntuple": cmssw_ntuple, "l1scouting-edm": l1scouting_edm[0]}.get(which)
    if which == "scouting-run3":
        source = tmp_path / "scout.raw"
        assert main(["convert", str(cmssw_ntuple), str(source)]) == 0
        capsys.readouterr()
    out = tmp_path / "refit.root"
    assert main(["refit", "--model", str(onnx_path), str(source), str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("l1refit: error:")]
    assert err == [
        f"l1refit: error: {out}: a .root output is a friend tree aligned with the entries of a NanoAOD-like input "
        f"(nanoaod, l1scouting-nano), but {source} is {which}; write Parquet (.parquet) instead"
    ]
    assert not out.exists() and not list(tmp_path.glob(".refit*"))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # coffea's warnings about cross-references this file lacks
def test_coffea_reads_the_friend_beside_its_input(exported, tmp_path, monkeypatch, nano_with_empty_entries):
    """The docs/deploy.md §5 recipe: coffea's NanoAODSchema makes L1MuRefit a collection parallel to L1Mu."""
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    _, onnx_path, _, _ = exported
    path, counts, _ = nano_with_empty_entries
    refit_file(onnx_path, path, tmp_path / "refit.root")
    monkeypatch.setattr(NanoAODSchema, "error_missing_event_ids", False)  # scouting NanoAOD has no `event`
    events = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()
    refit = NanoEventsFactory.from_root({str(tmp_path / "refit.root"): friend.DEFAULT_TREE},
                                        schemaclass=NanoAODSchema, mode="eager").events()  # fmt: skip
    events["L1MuRefit"] = refit.L1MuRefit
    np.testing.assert_array_equal(ak.num(events.L1MuRefit), ak.num(events.L1Mu))
    np.testing.assert_array_equal(ak.num(events.L1Mu), counts)
    assert ak.all(refit.orbitNumber == events.orbitNumber)
    assert ak.mean(events.L1MuRefit.pt - events.L1Mu.pt) != 0  # the refit values, not a copy of L1Mu


@pytest.fixture(scope="module")
def nanoaod_file(tmp_path_factory):
    """2000 synthetic ZeroBias events in the central NanoAOD layout, some without any L1 muon."""
    from l1refit.config.loading import defaults
    from l1refit.simulate.events import generate_file

    path = tmp_path_factory.mktemp("friend_nanoaod") / "nano.root"
    generate_file(path, "zerobias", 2000, seed=5, part=0, gen=defaults("generator"), layout="nanoaod")
    return path


def test_friend_tree_of_a_nanoaod_lines_up_with_its_events(exported, tmp_path, nanoaod_file):
    _, onnx_path, _, _ = exported
    out = tmp_path / "refit.root"
    result = refit_file(onnx_path, nanoaod_file, out, chunk_size=300)
    source = uproot.open(nanoaod_file)["Events"]
    n_l1 = source["nL1Mu"].array(library="np")
    assert (n_l1 == 0).mean() > 0.1 and result["entries"] == source.num_entries == 2000
    assert result["muons"] == n_l1.sum() and result["format"] == "nanoaod"
    tree = uproot.open(out)[friend.DEFAULT_TREE]
    np.testing.assert_array_equal(tree["nL1MuRefit"].array(library="np"), n_l1)
    for name in ("run", "luminosityBlock", "event"):  # coffea's NanoAODSchema needs them; they check the alignment
        np.testing.assert_array_equal(tree[name].array(library="np"), source[name].array(library="np"))

    refit_file(onnx_path, nanoaod_file, tmp_path / "refit.parquet", chunk_size=300)
    table = pd.read_parquet(tmp_path / "refit.parquet")
    assert list(table.columns[:6]) == ["run", "lumi", "event", "entry", "l1_index", "muon_bx"]
    np.testing.assert_array_equal(table["entry"], np.repeat(np.arange(2000), n_l1))
    np.testing.assert_array_equal(table["event"], np.repeat(source["event"].array(library="np"), n_l1))
    for field in ("pt", "eta", "phi"):
        jagged = tree[f"L1MuRefit_{field}"].array()
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(jagged)), table[f"refit_{field}"], err_msg=field)
    l1_pt = ak.to_numpy(ak.flatten(source["L1Mu_pt"].array()))  # 12-bit floats; l1_pt is rebuilt at full precision
    np.testing.assert_allclose(table["l1_pt"], l1_pt, rtol=2**-12)
