"""Column names of fake identification, torch- and onnxruntime-free so that every stage can name them cheaply.

:data:`FAKE_FEATURES` are what the classifier reads from a candidate table (the skim's
``results/skims/<dataset>.candidates.parquet``), :data:`LABEL` the skim's label, :data:`FAKE_PROB` the classifier's
output: the ONNX graph's output name and its column in predictions and ``refit`` output.
"""

FAKE_FEATURES: tuple[str, ...] = (
    "hwPhiAtVtx",
    "hwEtaAtVtx",
    "hwPt",
    "charge",
    "hwQual",
    "n_l1_bx",  # selected L1 muons in the same event and BX, itself included (>= 1)
    "near_dphi",  # |ΔhwPhi| at the station to the nearest other selected L1 muon; 288 when alone
    "near_deta",  # |ΔhwEta| to it; 0 when alone
    "near_dqual",  # its hwQual − own hwQual; 0 when alone
    "near_dpt",  # its hwPt − own hwPt; 0 when alone
)
LABEL = "is_fake"  # no offline muon of selection.fake_offline_id matched the L1 muon
FAKE_PROB = "fake_prob"
