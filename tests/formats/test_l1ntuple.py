"""l1refit.formats.l1ntuple against the ROOT-written CMSSW-layout fixture and its truth tables."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot

from l1refit import scales
from l1refit.errors import FormatError
from l1refit.formats import l1ntuple

HW_TRUTH = {  # read field -> truth.csv column
    "hwPt": "hwPt",
    "hwPtUnconstrained": "hwPtUnconstrained",
    "hwEta": "hwEta",
    "hwPhi": "hwPhi",
    "hwEtaAtVtx": "hwEtaAtVtx",
    "hwPhiAtVtx": "hwPhiAtVtx",
    "hwDEta": "hwDEta",
    "hwDPhi": "hwDPhi",
    "charge": "hwChg",
    "hwQual": "hwQual",
    "hwIso": "hwIso",
    "hwDXY": "hwDXY",
    "tfMuonIndex": "tfMuonIdx",
    "bx": "bx",
}
L1_FLOATS = ("pt", "eta", "phi", "etaSt2", "phiSt2", "ptUnconstrained")
RUN3_LEAVES = {
    "hwDXY": "muonDxy",
    "hwPtUnconstrained": "muonIEtUnconstrained",
    "ptUnconstrained": "muonEtUnconstrained",
}


@pytest.fixture(scope="module")
def events(cmssw_ntuple) -> ak.Array:
    return l1ntuple.read(cmssw_ntuple)


@pytest.fixture(scope="module")
def flat_file(events, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("flat") / "fixture_flat.root"
    l1ntuple.write(path, events)
    return path


def _flat_with_event(collection: ak.Array, events: ak.Array) -> tuple[ak.Array, np.ndarray]:
    """Every muon of the collection in file order, with its event number."""
    event, _ = ak.broadcast_arrays(events["event"], collection["pt"])
    return ak.flatten(collection), ak.to_numpy(ak.flatten(event))


def _assert_same(a: ak.Array, b: ak.Array) -> None:
    assert str(a.type) == str(b.type)
    for field in a.fields:
        assert ak.array_equal(a[field], b[field], dtype_exact=True), field


def _toy_events(n: int = 6) -> dict:
    """Hardware-only L1 muons plus offline muons, the way the synthetic detector calls the writer."""
    counts = np.arange(n) % 3
    m = int(counts.sum())
    rng = np.random.default_rng(7)
    l1 = {
        "hwPt": rng.integers(2, 100, m),
        "hwEta": rng.integers(-70, 70, m),
        "hwPhi": rng.integers(0, 576, m),
        "hwEtaAtVtx": rng.integers(-70, 70, m),
        "hwPhiAtVtx": rng.integers(0, 576, m),
        "charge": rng.choice([-1, 1], m),
        "hwQual": np.full(m, 12),
        "tfMuonIndex": rng.integers(36, 72, m),
    }
    muon = {
        "pt": rng.uniform(3, 30, m).astype(np.float32),
        "eta": rng.uniform(-1, 1, m).astype(np.float32),
        "phi": rng.uniform(-3, 3, m).astype(np.float32),
        "charge": rng.choice([-1, 1], m),
        "etaSt2": rng.uniform(-1, 1, m).astype(np.float32),
        "phiSt2": rng.uniform(-3, 3, m).astype(np.float32),
        "isLooseMuon": np.ones(m, bool),
        "isMediumMuon": np.ones(m, bool),
        "isTightMuon": np.zeros(m, bool),
        "iso": np.full(m, 0.05, np.float32),
    }
    return {
        "run": np.full(n, 1),
        "lumi": np.ones(n, int),
        "event": np.arange(n) + 10,
        "L1Mu": ak.unflatten(ak.zip(l1), counts),
        "Muon": ak.unflatten(ak.zip(muon), counts),
    }


def _rewrite(src: Path, dst: Path, *, branches=(), trees=(), replace=None) -> None:
    """Rewrite a flat file without some branches or trees, or with replaced branches (per-branch counters)."""
    with uproot.open(src) as fin, uproot.recreate(dst) as fout:
        for name in l1ntuple.TREES.values():
            if name in trees:
                continue
            arrays = fin[name].arrays(library="ak")
            keep = {k: arrays[k] for k in arrays.fields if k not in branches and k != l1ntuple.COUNTER}
            keep.update({k: v for k, v in (replace or {}).items() if k in keep})
            tree = fout.mktree(name, {k: v.type.content for k, v in keep.items()})
            tree.extend(keep)


# ---------------------------------------------------------------------------------------------------------
# the fixture against its truth tables


def test_fixture_counts_and_layout(events, cmssw_ntuple):
    assert len(events) == 1000
    assert int(ak.sum(ak.num(events["L1Mu"]))) == 1225
    assert int(ak.sum(ak.num(events["Muon"]))) == 1177
    assert events.fields == ["run", "lumi", "event", "bx", "orbit", "L1Mu", "Muon"]
    assert np.all(events["run"] == 325000)
    assert np.all(np.diff(ak.to_numpy(events["event"]).astype(np.int64)) > 0)
    info = l1ntuple.summarize(cmssw_ntuple)
    assert (info["layout"], info["n_events"], info["n_l1_muons"], info["n_offline_muons"]) == (
        "cmssw-split",
        1000,
        1225,
        1177,
    )
    assert "L1Upgrade/muonEt" in info["trees"][l1ntuple.TREES["l1"]]
    assert info["first_l1_muons"][0]["hwPt"] == 56


def test_l1_hardware_fields_equal_truth(events, cmssw_fixtures):
    truth = pd.read_csv(cmssw_fixtures / "truth.csv")
    muons, event = _flat_with_event(events["L1Mu"], events)
    assert len(muons) == len(truth)
    np.testing.assert_array_equal(event, truth["event"])
    local = ak.to_numpy(ak.flatten(ak.local_index(events["L1Mu"]["pt"])))
    np.testing.assert_array_equal(local, truth["l1_index"])
    for field, column in HW_TRUTH.items():
        np.testing.assert_array_equal(ak.to_numpy(muons[field]), truth[column].to_numpy(), err_msg=field)
    assert np.all(muons["mass"] == 0)


def test_offline_fields_equal_truth(events, cmssw_fixtures):
    truth = pd.read_csv(cmssw_fixtures / "offline_truth.csv")
    muons, event = _flat_with_event(events["Muon"], events)
    np.testing.assert_array_equal(event, truth["event"])
    for field in ("pt", "eta", "phi"):
        assert muons[field].type.content.primitive == "float32"
        np.testing.assert_array_equal(ak.to_numpy(muons[field]), truth[field].to_numpy(np.float32), err_msg=field)
    np.testing.assert_array_equal(ak.to_numpy(muons["charge"]), truth["charge"])
    np.testing.assert_allclose(ak.to_numpy(muons["mass"]), 0.1056583755, rtol=1e-7)
    failed = truth["st_propagation_failed"].to_numpy().astype(bool)
    # the file and offline_truth.csv agree on 59 failed propagations (the fixture README's "130" is off)
    assert failed.sum() == 59
    for field in ("etaSt1", "phiSt1", "etaSt2", "phiSt2"):
        np.testing.assert_array_equal(ak.to_numpy(muons[field])[failed], -9999.0)
    for field, column in (("etaSt2", "eta_st2_true"), ("phiSt2", "phi_st2_true")):
        np.testing.assert_allclose(ak.to_numpy(muons[field])[~failed], truth[column][~failed], atol=1e-6)
    loose, medium, tight = (ak.to_numpy(muons[f]) for f in ("isLooseMuon", "isMediumMuon", "isTightMuon"))
    assert np.all(loose >= medium) and np.all(medium >= tight) and tight.any() and not loose.all()


def test_l1_floats_are_the_cmssw_conversions(events):
    muons = ak.flatten(events["L1Mu"])
    hw = {f: ak.to_numpy(muons[f]) for f in muons.fields}
    np.testing.assert_array_equal(hw["pt"], (hw["hwPt"] - 1) * 0.5)
    expected = {
        "eta": scales.hw_to_eta(hw["hwEtaAtVtx"], "cmssw"),
        "phi": scales.hw_to_phi(hw["hwPhiAtVtx"], "cmssw"),
        "etaSt2": scales.hw_to_eta(hw["hwEta"], "cmssw"),
        "phiSt2": scales.hw_to_phi(hw["hwPhi"], "cmssw"),
        "ptUnconstrained": scales.hw_to_pt_unconstrained(hw["hwPtUnconstrained"], "cmssw"),
    }
    for field, value in expected.items():
        np.testing.assert_array_max_ulp(hw[field], value.astype(np.float32), maxulp=1)
    assert np.all((hw["phi"] > -np.pi) & (hw["phi"] <= np.pi))


# ---------------------------------------------------------------------------------------------------------
# round trips, chunks and the writer


@pytest.mark.parametrize("compression", ["lz4", "zlib"])
def test_write_then_read_is_identical(events, tmp_path, compression):
    path = tmp_path / "rt.root"
    l1ntuple.write(path, events, compression=compression)
    again = l1ntuple.read(path)
    _assert_same(events, again)
    info = l1ntuple.summarize(path)
    assert info["layout"] == "flat"
    l1_branches = info["trees"][l1ntuple.TREES["l1"]]
    assert l1_branches.count("nMuons") == 1 and not any(b.startswith("nmuon") for b in l1_branches)
    with uproot.open(path) as f:
        assert f[l1ntuple.TREES["l1"]]["muonIEt"].typename == "int16_t[]"
        assert f[l1ntuple.TREES["offline"]]["isLooseMuon"].typename == "bool[]"


def test_iterate_in_chunks_equals_read(events, flat_file, cmssw_ntuple):
    for path in (cmssw_ntuple, flat_file):
        chunks = list(l1ntuple.iterate(path, step_size=137))
        assert [len(c) for c in chunks] == [137] * 7 + [41]
        _assert_same(ak.concatenate(chunks), events)
    part = l1ntuple.read(cmssw_ntuple, entry_start=100, entry_stop=-500)
    _assert_same(part, events[100:500])
    assert len(list(l1ntuple.iterate(cmssw_ntuple, entry_start=990, step_size=4))) == 3


def test_writer_in_chunks(events, tmp_path):
    path = tmp_path / "chunks.root"
    with l1ntuple.Writer(path) as writer:
        for start in range(0, len(events), 300):
            writer.extend(events[start : start + 300])
    _assert_same(l1ntuple.read(path), events)


def test_hardware_only_l1_gets_cmssw_floats(events, tmp_path):
    keep = [f for f in events["L1Mu"].fields if f not in (*L1_FLOATS, "mass")]
    stripped = ak.with_field(events, events["L1Mu"][keep], "L1Mu")
    path = tmp_path / "hw.root"
    l1ntuple.write(path, stripped)
    again = l1ntuple.read(path)
    for field in events["L1Mu"].fields:
        a, b = ak.flatten(events["L1Mu"][field]), ak.flatten(again["L1Mu"][field])
        assert a.type == b.type, field
        np.testing.assert_array_max_ulp(ak.to_numpy(a), ak.to_numpy(b), maxulp=1)


def test_writer_fills_defaults_and_hw_differences(tmp_path):
    toy = _toy_events()
    toy["L1Mu"] = ak.unflatten(
        ak.zip(
            {
                "hwPt": [2, 3, 4, 5, 1],
                "hwEta": [10, 0, -3, 0, 0],
                "hwPhi": [570, 5, 110, 100, 0],
                "hwEtaAtVtx": [12, 0, -5, 0, 0],
                "hwPhiAtVtx": [5, 570, 100, 110, 289],
                "charge": [1, -1, -1, 1, 0],
                "hwQual": [12] * 5,
                "tfMuonIndex": [40] * 5,
            }
        ),
        [0, 1, 2, 2, 0, 0],
    )
    path = tmp_path / "toy.root"
    l1ntuple.write(path, toy)
    l1 = ak.flatten(l1ntuple.read(path)["L1Mu"])
    assert l1["hwDPhi"].tolist() == [11, -11, -10, 10, 289]
    assert l1["hwDEta"].tolist() == [2, 0, -2, 0, 0]
    assert l1["pt"].tolist() == [0.5, 1.0, 1.5, 2.0, 0.0]
    assert l1["phi"][4] == np.float32(289 * 0.010908 - 2 * np.pi)  # docs/formats.md §2.4: -3.130773
    with uproot.open(path) as f:
        raw = f[l1ntuple.TREES["l1"]].arrays(["muonEta", "muonEtaAtVtx", "muonPhi", "muonPhiAtVtx"])
    raw = {k: ak.to_numpy(ak.flatten(raw[k])) for k in raw.fields}
    lsb_phi = np.float32(5 * 0.010908)
    assert raw["muonEtaAtVtx"].tolist() == np.float32(np.array([12, 0, -5, 0, 0]) * 0.010875).tolist()
    assert raw["muonEta"].tolist() == np.float32(np.array([10, 0, -3, 0, 0]) * 0.010875).tolist()
    assert raw["muonPhiAtVtx"][0] == lsb_phi and raw["muonPhi"][1] == lsb_phi
    for field in ("hwIso", "hwDXY", "hwPtUnconstrained", "ptUnconstrained", "bx"):
        assert l1[field].tolist() == [0] * 5, field
    muon = ak.flatten(l1ntuple.read(path)["Muon"])
    assert np.all(muon["etaSt1"] == -9999.0) and np.all(muon["phiSt1"] == -9999.0)
    with uproot.open(path) as f:
        reco = f[l1ntuple.TREES["offline"]].arrays(["e", "et", "pt", "eta"])
    pt, eta = ak.flatten(reco["pt"]).to_numpy(), ak.flatten(reco["eta"]).to_numpy()
    energy = np.sqrt((pt * np.cosh(eta)) ** 2 + l1ntuple.MUON_MASS**2)
    np.testing.assert_allclose(ak.flatten(reco["e"]).to_numpy(), energy, rtol=1e-6)
    np.testing.assert_allclose(ak.flatten(reco["et"]).to_numpy(), energy / np.cosh(eta), rtol=1e-6)


def test_empty_writer_makes_readable_empty_file(tmp_path):
    path = tmp_path / "empty.root"
    with l1ntuple.Writer(path):
        pass
    events = l1ntuple.read(path)
    assert len(events) == 0 and "hwPt" in events["L1Mu"].fields and "etaSt2" in events["Muon"].fields


def test_emulated_tree(tmp_path):
    path = tmp_path / "emu.root"
    l1ntuple.write(path, _toy_events(), l1_tree=l1ntuple.EMU_L1_TREE)
    assert int(ak.sum(ak.num(l1ntuple.read(path, l1_tree=l1ntuple.EMU_L1_TREE)["L1Mu"]))) == 6
    with pytest.raises(FormatError, match="l1UpgradeTree/L1UpgradeTree"):
        l1ntuple.read(path)


# ---------------------------------------------------------------------------------------------------------
# coffea behaviour: ΔR at station 2 and invariant masses


def test_delta_r_at_station2_for_truth_matched_pairs(events, cmssw_fixtures):
    truth = pd.read_csv(cmssw_fixtures / "truth.csv")
    offline = pd.read_csv(cmssw_fixtures / "offline_truth.csv")
    first_offline = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(events["Muon"])))[:-1]])
    event_index = np.repeat(np.arange(len(events)), ak.to_numpy(ak.num(events["L1Mu"])))
    matched = truth["offline_index"].to_numpy() >= 0
    partner = first_offline[event_index[matched]] + truth["offline_index"].to_numpy()[matched]
    good = offline["st_propagation_failed"].to_numpy()[partner] == 0
    l1 = ak.flatten(l1ntuple.at_station2(events["L1Mu"]))[matched][good]
    reco = ak.flatten(l1ntuple.at_station2(events["Muon"]))[partner[good]]
    dr = ak.to_numpy(l1.delta_r(reco))
    assert len(dr) > 900 and dr.max() < 0.015
    dphi = scales.delta_phi(ak.to_numpy(l1["phiSt2"]), ak.to_numpy(reco["phiSt2"]))
    deta = ak.to_numpy(l1["etaSt2"]).astype(np.float64) - ak.to_numpy(reco["etaSt2"])
    np.testing.assert_allclose(dr, np.hypot(deta, dphi), atol=1e-6)
    at_vertex = ak.to_numpy(ak.flatten(events["L1Mu"])[matched][good].delta_r(reco))
    assert np.median(at_vertex) > 5 * np.median(dr)  # the vertex coordinates are bent away from station 2


def test_at_station2_keeps_the_candidate_and_the_input(events):
    moved = l1ntuple.at_station2(events["Muon"])
    assert ak.parameters(moved[0])["__record__"] == "PtEtaPhiMCandidate"
    assert ak.array_equal(moved["eta"], events["Muon"]["etaSt2"])
    assert ak.array_equal(moved["phi"], events["Muon"]["phiSt2"])
    assert ak.array_equal(moved["pt"], events["Muon"]["pt"])
    assert not ak.array_equal(events["Muon"]["phi"], events["Muon"]["phiSt2"])


def _hand_mass(a, b, m_a: float, m_b: float) -> float:
    def four(m):
        pt, eta, phi = (float(m[f]) for f in ("pt", "eta", "phi"))
        return np.array([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), 0.0]), pt, eta

    (pa, pta, etaa), (pb, ptb, etab) = four(a), four(b)
    energy = np.hypot(pta * np.cosh(etaa), m_a) + np.hypot(ptb * np.cosh(etab), m_b)
    p = pa[:3] + pb[:3]
    return float(np.sqrt(energy**2 - p @ p))


def test_dimuon_mass_from_coffea(events):
    two_l1 = events[ak.num(events["L1Mu"]) >= 2][0]["L1Mu"]
    mass = float((two_l1[0] + two_l1[1]).mass)
    assert mass == pytest.approx(_hand_mass(two_l1[0], two_l1[1], 0.0, 0.0), rel=1e-5)
    two_reco = events[ak.num(events["Muon"]) >= 2][0]["Muon"]
    m = l1ntuple.MUON_MASS
    mass = float((two_reco[0] + two_reco[1]).mass)
    assert mass == pytest.approx(_hand_mass(two_reco[0], two_reco[1], m, m), rel=1e-5)
    pairs = ak.combinations(events["L1Mu"], 2)
    masses = ak.flatten((pairs["0"] + pairs["1"]).mass)
    assert len(masses) > 100 and ak.all(masses >= 0)


# ---------------------------------------------------------------------------------------------------------
# bad input


def test_missing_offline_tree(tmp_path):
    toy = _toy_events()
    path = tmp_path / "l1only.root"
    l1ntuple.write(path, {k: v for k, v in toy.items() if k != "Muon"})
    with pytest.raises(FormatError, match="l1MuonRecoTree/Muon2RecoTree") as err:
        l1ntuple.read(path)
    assert str(path) in str(err.value)
    events = l1ntuple.read(path, require_offline=False)
    assert ak.num(events["Muon"]).tolist() == [0] * 6
    assert "etaSt2" in events["Muon"].fields and ak.sum(ak.num(events["L1Mu"])) == 6
    assert l1ntuple.summarize(path)["n_offline_muons"] is None


def test_missing_l1_tree(flat_file, tmp_path):
    path = tmp_path / "no_l1.root"
    _rewrite(flat_file, path, trees={l1ntuple.TREES["l1"]})
    with pytest.raises(FormatError, match="tree 'l1UpgradeTree/L1UpgradeTree' not found") as err:
        l1ntuple.read(path)
    assert str(path) in str(err.value)


def test_missing_branch(flat_file, tmp_path):
    path = tmp_path / "no_ieta.root"
    _rewrite(flat_file, path, branches={"muonIEta"})
    with pytest.raises(FormatError, match="muonIEta") as err:
        l1ntuple.read(path)
    assert err.value.branch == "muonIEta" and str(path) in str(err.value)


def test_leaves_with_other_multiplicities(events, flat_file, tmp_path):
    path = tmp_path / "shifted.root"
    shifted = ak.concatenate([events["L1Mu"]["hwPt"][1:], events["L1Mu"]["hwPt"][:1]])
    _rewrite(flat_file, path, replace={"muonIEt": shifted})
    with pytest.raises(FormatError, match="multiplicities") as err:
        l1ntuple.read(path)
    assert err.value.branch == "muonIEt"


def test_optional_run3_branches_absent_read_as_zero(events, flat_file, tmp_path):
    path = tmp_path / "run2.root"
    _rewrite(flat_file, path, branches=set(RUN3_LEAVES.values()))
    old = l1ntuple.read(path)
    for field in RUN3_LEAVES:
        assert ak.all(ak.flatten(old["L1Mu"][field]) == 0)
        assert old["L1Mu"][field].type == events["L1Mu"][field].type
    others = [f for f in events["L1Mu"].fields if f not in RUN3_LEAVES]
    assert ak.array_equal(old["L1Mu"][others], events["L1Mu"][others])
    assert sorted(l1ntuple.summarize(path)["zero_filled"]) == sorted(RUN3_LEAVES)


def test_trees_that_do_not_line_up(tmp_path):
    path = tmp_path / "misaligned.root"
    with uproot.recreate(path) as f:
        leaves = {
            "run": np.ones(3, np.uint32),
            "lumi": np.ones(3, np.uint32),
            "event": np.arange(3, dtype="u8"),
        }
        f.mktree(l1ntuple.TREES["event"], {k: v.dtype for k, v in leaves.items()}).extend(leaves)
    with l1ntuple.Writer(tmp_path / "two.root") as writer:
        writer.extend({k: v[:2] for k, v in _toy_events().items()})
    with uproot.open(tmp_path / "two.root") as src, uproot.update(path) as dst:
        l1 = src[l1ntuple.TREES["l1"]].arrays()
        tree = dst.mktree(l1ntuple.TREES["l1"], {k: l1[k].type.content for k in l1.fields})
        tree.extend({k: l1[k] for k in l1.fields})
    with pytest.raises(FormatError, match="do not line up"):
        l1ntuple.read(path, require_offline=False)


@pytest.mark.parametrize("content", [b"not a ROOT file at all\n" * 40, b"root"])
def test_not_root(tmp_path, content):
    path = tmp_path / "bogus.root"
    path.write_bytes(content)
    with pytest.raises(FormatError, match="not a readable ROOT file") as err:
        l1ntuple.read(path)
    assert str(path) in str(err.value)


def test_truncated_fixture(tmp_path, cmssw_ntuple):
    path = tmp_path / "truncated.root"
    path.write_bytes(cmssw_ntuple.read_bytes()[:5000])
    with pytest.raises(FormatError, match=str(path)):
        l1ntuple.read(path)


# ---------------------------------------------------------------------------------------------------------
# atomic writing and writer input checks


def test_failure_midway_leaves_no_file(tmp_path):
    path = tmp_path / "out.root"
    toy = _toy_events()
    with pytest.raises(RuntimeError, match="boom"), l1ntuple.Writer(path) as writer:
        writer.extend(toy)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ev: ev["L1Mu"][[f for f in ev["L1Mu"].fields if f != "hwPt"]], "hwPt"),
        (lambda ev: ak.with_field(ev["L1Mu"], ev["L1Mu"]["hwPt"] + 40000, "hwPt"), "do not fit"),
    ],
)
def test_bad_writer_input_leaves_no_file(tmp_path, change, message):
    events = ak.Array(_toy_events())
    bad = ak.with_field(events, change(events), "L1Mu")
    path = tmp_path / "bad.root"
    with pytest.raises(ValueError, match=message):
        l1ntuple.write(path, bad)
    assert list(tmp_path.iterdir()) == []


def test_chunks_must_agree(tmp_path):
    toy = _toy_events()
    with pytest.raises(ValueError, match="optional fields"), l1ntuple.Writer(tmp_path / "x.root") as writer:
        writer.extend(toy)
        writer.extend({**toy, "bx": np.zeros(6, int)})
    assert list(tmp_path.iterdir()) == []
