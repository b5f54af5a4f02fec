"""The skim on Run-3 inputs: synthetic NanoAOD against the L1Ntuple of the same events, vertex matching, and the
CMSSW L1 scouting files (L1 table only)."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from l1refit.config.datasets import check_training_dataset
from l1refit.config.loading import defaults
from l1refit.errors import ConfigError, FormatError
from l1refit.formats import l1scouting
from l1refit.simulate.events import generate_file
from l1refit.skim.files import skim_file


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """The same 30000 synthetic ZeroBias events as an L1Ntuple and as a central NanoAOD."""
    out = tmp_path_factory.mktemp("run3skim")
    gen = defaults("generator")
    paths = {fmt: out / f"{fmt}.root" for fmt in ("l1ntuple", "nanoaod")}
    for fmt, path in paths.items():
        generate_file(path, "zerobias", 30000, seed=5, part=0, gen=gen, layout=fmt)
    return paths


def _skim(path, fmt, tmp_path, **selection):
    stem = tmp_path / f"{fmt}-{'-'.join(map(str, selection.values()))}"
    cutflow = skim_file(path, fmt, selection, f"{stem}.parquet", f"{stem}.csv")
    return pq.read_table(f"{stem}.parquet").to_pandas(), cutflow.set_index("step")


def test_nanoaod_skim_matches_the_l1ntuple_skim(layouts, tmp_path):
    ref, ref_flow = _skim(layouts["l1ntuple"], "l1ntuple", tmp_path)
    nano, flow = _skim(layouts["nanoaod"], "nanoaod", tmp_path)
    assert list(nano.columns) == list(ref.columns)
    assert (nano["tfMuonIndex"] == 255).all() and flow.loc["l1_barrel", "description"].startswith(
        "... in the BMTF acceptance |eta| < 0.83 at the muon station (the file has no tfMuonIndex)"
    )
    assert "pt >= 3 GeV && hwQual >= 8" in flow.loc["l1_all", "description"]
    assert "propagated by l1refit" in flow.loc["offline_st2_valid", "description"]
    # the same pairs, to the propagation's accuracy: most matched pairs of one skim are in the other
    key = ["event", "l1_index", "reco_index"]
    both = ref.merge(nano, on=key, suffixes=("", "_nano"))
    assert len(both) > 0.9 * len(ref)
    for column in ("hwPt", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "l1_pt", "l1_eta", "l1_phi", "reco_pt"):
        assert np.array_equal(both[column], both[f"{column}_nano"]), column
    assert np.abs(both["reco_eta"] - both["reco_eta_nano"]).max() < 2e-5  # 16-bit mantissa of Muon_eta
    efficiency = flow.loc["match_efficiency", "fraction"]
    assert abs(efficiency - ref_flow.loc["match_efficiency", "fraction"]) < 0.03
    assert flow.loc["fake_match_rate", "fraction"] < 0.005


def test_vertex_matching_uses_its_own_cut(layouts, tmp_path):
    station, _ = _skim(layouts["nanoaod"], "nanoaod", tmp_path)
    vertex, flow = _skim(layouts["nanoaod"], "nanoaod", tmp_path, match_at="vertex", vertex_match_dr2=0.04)
    assert "dR2 < 0.04 at the vertex" in flow.loc["matched_pairs", "description"]
    assert flow.loc["offline_st2_valid", "count"] == flow.loc["offline_all", "count"]  # not required at the vertex
    dr2_vertex = ((vertex["l1_phi"] - vertex["reco_phi"] + np.pi) % (2 * np.pi) - np.pi) ** 2 + (
        vertex["l1_eta"] - vertex["reco_eta"]
    ) ** 2
    assert np.allclose(vertex["dr2"], dr2_vertex, atol=1e-5) and vertex["dr2"].max() < 0.04
    assert 0.8 < len(vertex) / len(station) < 1.2
    _, tight = _skim(layouts["nanoaod"], "nanoaod", tmp_path, match_at="vertex", vertex_match_dr2=0.001)
    assert tight.loc["matched_pairs", "count"] < 0.7 * flow.loc["matched_pairs", "count"]


def test_l1_scouting_files_give_the_l1_table(l1scouting_edm, l1scouting_rows, tmp_path):
    edm, _ = l1scouting_edm
    table, flow = _skim(edm, "l1scouting-edm", tmp_path, min_quality=0, l1_pt=[0.0, 255.5])
    expected = np.concatenate([r["hwPt"] for r in l1scouting.iterate(edm, "l1scouting-edm", 100)])
    assert flow.loc["l1_all", "count"] == expected.size > 0
    assert list(table.columns[:4]) == ["run", "orbit", "bx", "part"] and flow.loc["offline_all", "count"] == 0
    rows = l1scouting_rows(600, seed=4)
    nano = tmp_path / "scout.root"
    l1scouting.write_nano(nano, rows, hardware=False)
    table, flow = _skim(nano, "l1scouting-nano", tmp_path, tf_muon_index=[0, 107], min_quality=0, l1_pt=[-1, 256])
    assert len(table) == 600 and flow.loc["events", "count"] == len(np.unique(rows["orbit"] * 4096 + rows["bx"]))
    assert np.array_equal(np.sort(table["hwPt"]), np.sort(rows["hwPt"]))


def test_scouting_data_cannot_train(layouts, tmp_path):
    datasets = {"scout": {"source": "files", "format": "l1scouting-nano", "paths": ["x"]},
                "nano": {"source": "synthetic", "format": "nanoaod"}}  # fmt: skip
    with pytest.raises(ConfigError, match="training.dataset 'scout' has format l1scouting-nano, which holds L1 muons"):
        check_training_dataset(datasets, "scout")
    check_training_dataset(datasets, "nano")
    with pytest.raises(FormatError, match=r"is a nanoaod file, but the format 'l1ntuple' was expected"):
        skim_file(layouts["nanoaod"], "l1ntuple", {}, tmp_path / "x.parquet", tmp_path / "x.csv")
    assert not (tmp_path / "x.parquet").exists()
