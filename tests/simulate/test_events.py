"""Synthetic L1Ntuple-layout files: reproducible per seed, independent per part, with the junk a real ntuple has,
and MuOnia peaks at the PDG masses offline but wide and high with GMT values."""

import awkward as ak
import numpy as np
import pytest

from l1refit.formats import l1ntuple
from l1refit.simulate import events
from l1refit.simulate.resonances import state_specs


def test_same_seed_identical_other_part_independent(gen, luts):
    a = events.zerobias_block(events.block_rng(1, 0, 0), 2000, gen, luts)
    b = events.zerobias_block(events.block_rng(1, 0, 0), 2000, gen, luts)
    c = events.zerobias_block(events.block_rng(1, 1, 0), 2000, gen, luts)
    assert ak.to_list(a) == ak.to_list(b)
    pt_a, pt_c = ak.flatten(a.Muon.pt).to_numpy(), ak.flatten(c.Muon.pt).to_numpy()
    assert not np.array_equal(pt_a[:100], pt_c[:100])
    # independent draws: no correlation between the two parts' pT sequences
    n = min(pt_a.size, pt_c.size)
    assert abs(np.corrcoef(pt_a[:n], pt_c[:n])[0, 1]) < 0.1


def test_written_file_has_the_junk_the_skim_must_remove(tmp_path, gen, luts):
    path = tmp_path / "zb.root"
    events.generate_file(path, "zerobias", 3000, seed=2, part=0, gen=gen, luts=luts)
    ev = l1ntuple.read(path)
    assert len(ev) == 3000 and ev.event.tolist() == list(range(1, 3001))
    l1 = ak.flatten(ev.L1Mu)
    assert set(np.unique(l1.bx.to_numpy())) == {-1, 0, 1}
    tf = l1.tfMuonIndex.to_numpy()
    assert np.all((tf >= 18) & (tf <= 89)) and np.any(tf < 36) and np.any(tf > 71)  # BMTF and OMTF
    barrel = (tf >= 36) & (tf <= 71)
    assert np.all(np.abs(l1.hwEta.to_numpy()[barrel]) <= 90)
    assert np.all(l1.hwPt.to_numpy() > 1)  # the ntuple stores only pt > 0
    # within an event: BX ascending, then hwPt descending
    key = ak.to_numpy(ak.flatten(ev.L1Mu.bx * 1000 - ev.L1Mu.hwPt)).astype(int)
    local = ak.local_index(ev.L1Mu, axis=1)
    first = ak.flatten(local == 0).to_numpy()
    assert np.all((np.diff(key) >= 0) | first[1:])
    # unmatched fakes exist: more L1 candidates than offline muons with an L1
    assert len(l1) > int(ak.sum(ak.num(ev.Muon))) * 0.8


def test_muonia_offline_peaks_at_pdg_masses_and_gmt_is_wider(tmp_path, gen, luts):
    path = tmp_path / "mo.root"
    events.generate_file(path, "muonia", 4000, seed=3, part=0, gen=gen, luts=luts)
    ev = l1ntuple.read(path)
    assert ak.all(ak.num(ev.Muon) == 2)
    off = (ev.Muon[:, 0] + ev.Muon[:, 1]).mass.to_numpy()
    specs = state_specs()
    for state, window in (("jpsi", 0.15), ("upsilon1s", 0.3)):
        m0 = specs[state].mass
        near = off[np.abs(off - m0) < window]
        assert np.median(near) == pytest.approx(m0, rel=2e-3)
    # L1 pairs of the same events (BX 0, both present): the J/psi peak is much wider with GMT values
    l1 = ev.L1Mu[ev.L1Mu.bx == 0]
    two = (ak.num(l1) >= 2) & (np.abs(off - specs["jpsi"].mass) < 0.1)
    gmt = (l1[two][:, 0] + l1[two][:, 1]).mass.to_numpy()
    off_j = off[ak.to_numpy(two)]
    assert np.std(gmt) > 5 * np.std(off_j)
    assert np.median(gmt) > 1.05 * np.median(off_j)  # shifted up: the L1 pT scale of the 90 % rule
