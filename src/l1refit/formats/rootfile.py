"""Which kind of CMS ROOT file a path is, told from its ``Events`` tree's top-level branches (docs/formats.md §9, §10).

L1Ntuples have no ``Events`` tree; CMSSW EDM files have ``EventAuxiliary``; a NanoAOD has ``event`` and the ``L1Mu``
counter; an L1 scouting NanoAOD has ``orbitNumber`` and ``bunchCrossing`` but no ``event`` (the orbit is the event).
"""

from __future__ import annotations

import uproot


def flavour(path) -> str | None:
    """``l1scouting-edm``, ``l1scouting-nano`` or ``nanoaod`` for a ROOT file with such an ``Events`` tree, else None.

    A NanoAOD without ``nL1Mu`` (e.g. MC without the L1 table) is still ``nanoaod``: its reader says what is missing.
    """
    try:
        with uproot.open(path) as file:
            if "Events" not in file.keys(cycle=False):
                return None
            names = set(file["Events"].keys(recursive=False))
    except Exception:  # not a readable ROOT file here: the L1Ntuple reader reports it
        return None
    if "EventAuxiliary" in names:
        return "l1scouting-edm"
    if "event" not in names:
        return "l1scouting-nano" if {"orbitNumber", "bunchCrossing"} <= names else None
    return "nanoaod" if {"run", "luminosityBlock"} <= names else None
