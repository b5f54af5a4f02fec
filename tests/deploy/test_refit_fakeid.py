"""The fake classifier deployed: ONNX export, and `refit --fakeid` on raw files equal to the skim's candidate table.

A small synthetic L1Ntuple is skimmed (candidate table with neighbour features and labels), a classifier trained
on it and exported; the refit then recomputes the selection and the neighbours from the raw file's muons, and its
fake probabilities must equal the classifier's on the candidate table, muon by muon.
"""

import numpy as np
import pandas as pd
import pytest

from l1refit.deploy.fakeid import event_groups, load_fakeid, selected
from l1refit.deploy.refit import RefitError, refit_file
from l1refit.errors import L1RefitError
from l1refit.skim.selection import Selection


def test_export_keeps_the_probabilities_and_the_selection(deployed):
    _, _, _, candidates, classifier, onnx_path = deployed
    fake = load_fakeid(onnx_path)
    assert fake.selection == Selection.from_config(None)
    x = candidates[list(fake.inputs)].to_numpy(np.float32)
    onnx_prob = fake.score(x)
    assert fake.engine == "onnxruntime"
    np.testing.assert_allclose(onnx_prob, classifier.predict_proba(candidates), atol=1e-6)


@pytest.mark.parametrize("chunk_size", [700, 100_000])
def test_refit_of_the_raw_file_equals_the_candidate_table(deployed, exported, chunk_size):
    tmp, ntuple, _, candidates, classifier, onnx_path = deployed
    out = tmp / f"refit{chunk_size}.parquet"
    refit_file(exported[1], ntuple, out, fakeid=onnx_path, chunk_size=chunk_size)
    refit = pd.read_parquet(out)
    assert refit["fake_prob"].notna().sum() == len(candidates)  # exactly the selected muons have one
    both = refit.merge(candidates.assign(expected=classifier.predict_proba(candidates)), on=["event", "l1_index"])
    assert len(both) == len(candidates)
    np.testing.assert_allclose(both["fake_prob"], both["expected"], atol=1e-6)
    outside = refit[refit["fake_prob"].isna()]
    sel = Selection.from_config(None)
    failed = (outside["muon_bx"] != sel.bx) | (outside["hwQual"] < sel.min_quality) | (outside["l1_pt"] <= 2.5)
    failed |= (outside["l1_pt"] >= 45) | (outside["tfMuonIndex"] < 36) | (outside["tfMuonIndex"] > 71)
    assert failed.all()


def test_refit_of_the_candidate_table_reads_its_neighbours(deployed, exported):
    tmp, _, _, candidates, classifier, onnx_path = deployed
    refit_file(exported[1], tmp / "candidates.parquet", tmp / "cand_refit.parquet", fakeid=onnx_path, chunk_size=999)
    refit = pd.read_parquet(tmp / "cand_refit.parquet")
    np.testing.assert_allclose(refit["fake_prob"], classifier.predict_proba(candidates), atol=1e-6)


def test_a_parquet_without_neighbours_and_a_wrong_graph_are_errors(deployed, exported):
    tmp, _, skim, _, _, onnx_path = deployed
    with pytest.raises(RefitError, match=r"lacks the column\(s\) n_l1_bx.*candidate table"):
        refit_file(exported[1], skim, tmp / "x.parquet", fakeid=onnx_path)
    with pytest.raises(L1RefitError, match="not an l1refit fake classifier"):
        load_fakeid(exported[1])
    assert not (tmp / "x.parquet").exists()


def test_event_groups_and_the_flat_selection():
    rows = {"run": np.array([1, 1, 1, 1, 2]), "event": np.array([5, 5, 6, 6, 6]), "l1_index": np.arange(5),
            "muon_bx": np.array([0, 1, 0, 0, 0]), "hwPt": np.array([10, 10, 10, 1, 10]),
            "l1_pt": np.array([4.5, 4.5, 4.5, 0.0, 50.0]), "hwQual": np.array([12, 12, 11, 12, 15]),
            "hwEta": np.zeros(5, int), "tfMuonIndex": np.array([40, 40, 40, 40, 72])}  # fmt: skip
    assert event_groups(rows, ["run", "event", "l1_index", "muon_bx"]).tolist() == [0, 0, 1, 1, 2]
    # muon 1 out of time, 2 below quality, 3 below pT, 4 above pT and outside the BMTF
    assert selected(rows, Selection.from_config(None)).tolist() == [True, False, False, False, False]
    no_tf = {**rows, "tfMuonIndex": np.full(5, 255), "hwEta": np.array([0, 0, 0, 0, 90])}  # by |eta| < 0.83
    loose = Selection.from_config({"min_quality": 0, "l1_pt": [0.0, 100.0]})  # pT 0 still fails (0 < pT)
    assert selected(no_tf, loose).tolist() == [True, False, True, False, False]  # muon 4: eta 0.98
