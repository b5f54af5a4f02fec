"""Acceptance of the dimuon analysis on a fixed synthetic sample: a network trained on ZeroBias narrows the J/ψ and
Υ(1S) peaks of MuOnia and moves them toward the PDG masses (the paper's Figure 3, as numbers).

The chain is the workflow's without files: ZeroBias muons from the detector simulation train model B of Table 1
(few epochs), MuOnia events are written as an L1Ntuple and skimmed, and the fitted peaks of GMT and
network-corrected masses are compared.
"""

import numpy as np
import pandas as pd
import pytest

from l1refit.analysis.dimuon import pair_masses
from l1refit.analysis.fit import fit_table
from l1refit.config.loading import defaults
from l1refit.ml.spec import ModelSpec
from l1refit.ml.training import train
from l1refit.simulate.events import generate_file
from l1refit.simulate.matched import matched_sample
from l1refit.simulate.ugmt import build_luts
from l1refit.skim.files import skim_file

MODEL_B = {"loss": "logcosh", "optimizer": "adadelta", "regularization": None, "hidden_activation": "relu",
           "output_activation": "linear"}  # fmt: skip


def _zerobias(gen, luts, selection, n, seed):
    s = matched_sample(gen, n, seed, luts, selection=selection)
    return pd.DataFrame({
        "hwPhiAtVtx": s.hw_phi, "hwEtaAtVtx": s.hw_eta, "hwPt": s.hw_pt, "charge": s.charge,
        **{f"l1_{k}": v for k, v in s.l1.items()}, **{f"reco_{k}": v for k, v in s.reco.items()},
    })  # fmt: skip


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    gen, selection = defaults("generator"), defaults("selection")
    luts = build_luts(gen)
    zerobias = _zerobias(gen, luts, selection, 400_000, seed=21)
    model, _ = train(zerobias, ModelSpec.from_config(MODEL_B, hidden=(32, 32, 32)),
                     epochs=30, batch_size=1024, patience=10, validation_fraction=0.1, target_clip=0.001,
                     target_scale=30.0, seed=22, progress=lambda line: None)  # fmt: skip
    tmp = tmp_path_factory.mktemp("muonia")
    generate_file(tmp / "muonia.root", "muonia", 150_000, seed=23, part=0, gen=gen, luts=luts)
    skim_file(tmp / "muonia.root", "l1ntuple", selection, tmp / "skim.parquet", tmp / "cutflow.csv")
    skim = pd.read_parquet(tmp / "skim.parquet")
    skim = pd.concat([skim, pd.DataFrame(model.predict(skim))], axis=1)
    masses = pair_masses(skim)
    _, fitted = fit_table(masses, {"jpsi": None, "upsilon1s": None})
    return {(fit.resonance, fit.source): fit for fit in fitted}


@pytest.mark.parametrize("resonance", ["jpsi", "upsilon1s"])
def test_network_narrows_the_peak_and_moves_it_to_the_pdg_mass(fits, resonance):
    gmt, nn = fits[resonance, "GMT"], fits[resonance, "NN"]
    assert gmt.valid and nn.valid
    assert gmt.shift > 0.05  # the GMT peak sits well above the PDG mass (the threshold-scaled pT)
    # closer to the PDG mass by more than twice the combined fit uncertainty, and narrower
    assert abs(nn.shift) < abs(gmt.shift) - 2 * np.hypot(gmt.peak_err, nn.peak_err) / gmt.pdg_mass
    assert nn.width < gmt.width
