"""Run-3 NanoAOD with the uGMT muons (``L1Mu_*``) beside the offline muons (``Muon_*``): read and write.

The layout, the float precision and the hardware-integer recovery are in :mod:`.layout` (docs/formats.md §10).
"""

from l1refit.formats.nanoaod.layout import FLAVOURS, round_mantissa
from l1refit.formats.nanoaod.reader import Info, describe, iterate, l1_rows, summarize
from l1refit.formats.nanoaod.writer import Writer

__all__ = ["FLAVOURS", "Info", "Writer", "describe", "iterate", "l1_rows", "round_mantissa", "summarize"]
