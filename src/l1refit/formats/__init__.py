"""The data formats: 64-bit GMT words (:mod:`.gmt`), L1Ntuples (:mod:`.l1ntuple`), scouting raw (:mod:`.scouting`).

:mod:`.registry` lists the formats and tells them apart, :mod:`.inventory` summarises a file, :mod:`.convert`
converts between them and :mod:`.output` writes every output file atomically. See docs/formats.md.
"""
