"""L1Ntuple ROOT files: read them into coffea candidates (:mod:`.reader`), write them with uproot (:mod:`.writer`).

:func:`read` gives one record per event with ``run, lumi, event``, the uGMT muons ``L1Mu`` (stored floats at the
vertex, hardware integers) and the offline muons ``Muon``; the trees and leaves are in :mod:`.layout`. The
event layout and the choices behind it are in docs/formats.md §4.
"""

from l1refit.formats.l1ntuple.layout import (
    CANDIDATE,
    COUNTER,
    EMU_L1_TREE,
    MUON_MASS,
    STATION_INVALID,
    TREES,
)
from l1refit.formats.l1ntuple.reader import at_station2, iterate, read, summarize
from l1refit.formats.l1ntuple.writer import COMPRESSION, Writer, write

__all__ = [
    "CANDIDATE",
    "COMPRESSION",
    "COUNTER",
    "EMU_L1_TREE",
    "MUON_MASS",
    "STATION_INVALID",
    "TREES",
    "Writer",
    "at_station2",
    "iterate",
    "read",
    "summarize",
    "write",
]
