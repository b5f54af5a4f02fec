"""The synthetic CMS-like detector (docs/physics.md): per-muon physics, L1Ntuple files, and its calibration."""
