"""L1 scouting raw files of both eras, read into and written from one awkward layout of BX records.

``scouting-run2`` is the 2018 demonstrator stream (:mod:`.run2`), ``scouting-run3`` the ``RAW_`` container of
FRD events (:mod:`.run3`); :mod:`.reader` detects, streams and summarises them. The layout, the drop rules and
the choices made where the formats are silent are in docs/formats.md §3.
"""

from l1refit.formats.scouting.reader import (
    DEFAULT_CHUNK_BYTES,
    ScoutingQuirkWarning,
    ScoutingWarning,
    bit27_fraction,
    detect_format,
    iterate,
    read,
    summarize,
)
from l1refit.formats.scouting.records import BX_FIELDS, FLOAT_FIELDS, HW_FIELDS, LAST_BX, MAX_PER_SLOT, MUON_FIELDS
from l1refit.formats.scouting.run2 import run_from_name, write_run2
from l1refit.formats.scouting.run3 import write_run3

__all__ = [
    "BX_FIELDS",
    "DEFAULT_CHUNK_BYTES",
    "FLOAT_FIELDS",
    "HW_FIELDS",
    "LAST_BX",
    "MAX_PER_SLOT",
    "MUON_FIELDS",
    "ScoutingQuirkWarning",
    "ScoutingWarning",
    "bit27_fraction",
    "detect_format",
    "iterate",
    "read",
    "summarize",
    "run_from_name",
    "write_run2",
    "write_run3",
]
