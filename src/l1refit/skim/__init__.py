"""The skim: barrel L1 and offline muon selection, one-to-one matching at station 2, cutflows, Parquet output."""
