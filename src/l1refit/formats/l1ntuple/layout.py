"""What an L1Ntuple holds: tree paths, the leaf of each field with its CMSSW type, and the shared constants.

The reader and the writer both follow these tables, so a file written here reads back field for field
(docs/formats.md §4.1–4.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import particle

TREES = {
    "event": "l1EventTree/L1EventTree",
    "l1": "l1UpgradeTree/L1UpgradeTree",
    "offline": "l1MuonRecoTree/Muon2RecoTree",
}
EMU_L1_TREE = "l1UpgradeEmuTree/L1UpgradeTree"  # the emulated uGMT muons, same class as TREES["l1"]
SPLIT_BRANCH = {"event": "Event", "l1": "L1Upgrade", "offline": "Muon"}  # CMSSW's class branch per tree

MUON_MASS = particle.Particle.from_pdgid(13).mass / 1000.0  # GeV
STATION_INVALID = -9999.0  # what CMSSW stores in etaSt1/phiSt1/etaSt2/phiSt2 when the propagation fails
CANDIDATE = "PtEtaPhiMCandidate"
COUNTER = "nMuons"  # the counter branch shared by every jagged branch of a tree that Writer writes

REQUIRED, ZERO, OPTIONAL = "required", "zero", "optional"  # absent leaf: error / read as 0 / field omitted


@dataclass(frozen=True)
class Leaf:
    leaf: str
    dtype: np.dtype
    presence: str = REQUIRED


_F4, _I2, _U2, _I4 = np.dtype("float32"), np.dtype("int16"), np.dtype("uint16"), np.dtype("int32")
_U4, _U8 = np.dtype("uint32"), np.dtype("uint64")
_BOOL = np.dtype(bool)

# field -> leaf; order is the output field order. Types are the CMSSW ones (docs/formats.md §4.1–4.3).
EVENT = {
    "run": Leaf("run", _U4),
    "lumi": Leaf("lumi", _U4),
    "event": Leaf("event", _U8),
    "bx": Leaf("bx", _U4, OPTIONAL),
    "orbit": Leaf("orbit", _U8, OPTIONAL),
}
L1 = {
    "pt": Leaf("muonEt", _F4),
    "eta": Leaf("muonEtaAtVtx", _F4),
    "phi": Leaf("muonPhiAtVtx", _F4),
    "charge": Leaf("muonChg", _I2),
    "etaSt2": Leaf("muonEta", _F4),
    "phiSt2": Leaf("muonPhi", _F4),
    "hwPt": Leaf("muonIEt", _I2),
    "hwEta": Leaf("muonIEta", _I2),
    "hwPhi": Leaf("muonIPhi", _I2),
    "hwEtaAtVtx": Leaf("muonIEtaAtVtx", _I2),
    "hwPhiAtVtx": Leaf("muonIPhiAtVtx", _I2),
    "hwDEta": Leaf("muonIDEta", _I2),
    "hwDPhi": Leaf("muonIDPhi", _I2),
    "hwQual": Leaf("muonQual", _U2),
    "hwIso": Leaf("muonIso", _U2),
    "hwDXY": Leaf("muonDxy", _U2, ZERO),
    "hwPtUnconstrained": Leaf("muonIEtUnconstrained", _I2, ZERO),
    "ptUnconstrained": Leaf("muonEtUnconstrained", _F4, ZERO),
    "tfMuonIndex": Leaf("muonTfMuonIdx", _U2),
    "bx": Leaf("muonBx", _I2),
}
OFFLINE = {
    "pt": Leaf("pt", _F4),
    "eta": Leaf("eta", _F4),
    "phi": Leaf("phi", _F4),
    "charge": Leaf("charge", _I4),
    "etaSt1": Leaf("etaSt1", _F4),
    "phiSt1": Leaf("phiSt1", _F4),
    "etaSt2": Leaf("etaSt2", _F4),
    "phiSt2": Leaf("phiSt2", _F4),
    "isLooseMuon": Leaf("isLooseMuon", _BOOL),
    "isMediumMuon": Leaf("isMediumMuon", _BOOL),
    "isTightMuon": Leaf("isTightMuon", _BOOL),
    "iso": Leaf("iso", _F4),
    "hlt_isomu": Leaf("hlt_isomu", _I2, OPTIONAL),
    "hlt_mu": Leaf("hlt_mu", _I2, OPTIONAL),
    "passesSingleMuon": Leaf("passesSingleMuon", _I4, OPTIONAL),
}
OFFLINE_ENERGY = {"e": _F4, "et": _F4}  # written (the CMSSW tree has them), never read back
TABLES = {"event": EVENT, "l1": L1, "offline": OFFLINE}
