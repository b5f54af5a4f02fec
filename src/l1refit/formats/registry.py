"""The file formats the package reads and writes, and how a file's format is told from its first bytes.

One list for the config, the CLI, the skim, the refit and the converter. Importing this module stays cheap (no
awkward, numba or uproot): the Snakefile imports it when it is parsed. See docs/formats.md.
"""

from __future__ import annotations

from pathlib import Path

from l1refit.errors import FormatError

SCOUTING_FORMATS = ("scouting-run2", "scouting-run3")
EVENT_FORMATS = ("l1ntuple", *SCOUTING_FORMATS)  # files of L1 muons per event or BX: dataset inputs
ALL_FORMATS = ("parquet", *EVENT_FORMATS)  # also per-muon Parquet tables: refit inputs, convert outputs

REMOTE_PREFIXES = ("root://", "http://", "https://", "s3://")
ROOT_MAGIC = b"root"


def is_remote(path: str) -> bool:
    """True for URLs read through uproot/fsspec (e.g. ``root://`` via fsspec-xrootd): no local check possible."""
    return path.startswith(REMOTE_PREFIXES)


def detect_format(path: str | Path) -> str:
    """``l1ntuple`` for a ROOT file, else the scouting format (``scouting-run2``/``scouting-run3``).

    Remote URLs cannot be sniffed cheaply; they are taken as L1Ntuples (the only format served over xrootd).
    """
    if is_remote(str(path)):
        return "l1ntuple"
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as stream:
        head = stream.read(8)
    # "root" then the big-endian file version (e.g. 62206 for ROOT 6.22/06); a text file starting "root:"
    # (like /etc/passwd) fails the version check
    if head[:4] == ROOT_MAGIC and len(head) == 8 and 0 < int.from_bytes(head[4:], "big") < 1_000_000:
        return "l1ntuple"
    from l1refit.formats import scouting  # imported here: it loads awkward and numba

    return scouting.detect_format(path)


def check_format(path: str | Path, fmt: str | None) -> str:
    """The detected format of ``path``; with ``fmt`` given, a file of another format is a FormatError naming both."""
    detected = detect_format(path)
    if fmt is not None and fmt != detected:
        raise FormatError(path, f"is a {detected} file, but the format {fmt!r} was expected")
    return detected
