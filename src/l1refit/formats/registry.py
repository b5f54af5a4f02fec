"""The file formats the package reads and writes, and how a file's format is told from its first bytes.

One list for the config, the CLI, the skim, the refit and the converter. Importing this module stays cheap (no
awkward, numba or uproot): the Snakefile imports it when it is parsed. See docs/formats.md.
"""

from __future__ import annotations

from pathlib import Path

from l1refit.errors import FormatError

SCOUTING_FORMATS = ("scouting-run2", "scouting-run3")  # the 2018 demonstrator's raw files
L1SCOUTING_FORMATS = ("l1scouting-edm", "l1scouting-nano")  # CMSSW-written Run-3 L1 scouting (formats/l1scouting.py)
OFFLINE_FORMATS = ("l1ntuple", "nanoaod")  # L1 and offline muons per event: what a training dataset needs
L1_ONLY_FORMATS = (*SCOUTING_FORMATS, *L1SCOUTING_FORMATS)  # L1 muons only: what a trained model is applied to
EVENT_FORMATS = (*OFFLINE_FORMATS, *L1_ONLY_FORMATS)  # dataset inputs, `inspect`, `convert --from`
REFIT_FORMATS = ("parquet", *EVENT_FORMATS)
CONVERT_TO = ("parquet", "l1ntuple", *SCOUTING_FORMATS, "l1scouting-nano")  # what `convert` writes

REMOTE_PREFIXES = ("root://", "http://", "https://", "s3://")
ROOT_MAGIC = b"root"
ACCEPTED = (
    "accepted formats: l1ntuple, nanoaod, l1scouting-edm, l1scouting-nano (ROOT files), scouting-run2 (a stream "
    "of BX records, .dat or .dat.bz2), scouting-run3 (a RAW_ container)"
)
# files that users hand over by mistake, told by their magic; none can start a scouting file (a Run-2 stream
# starts with a muon count 0..8, a Run-3 file with RAW_, a compressed one with BZh)
OTHER_MAGICS = {
    b"PAR1": "a Parquet file",
    b"\x89HDF\r\n\x1a\n": "an HDF5 file",
    b"\x1f\x8b": "a gzip-compressed file",
    b"\xfd7zXZ\x00": "an xz-compressed file",
    b"\x28\xb5\x2f\xfd": "a zstd-compressed file",
    b"PK\x03\x04": "a zip archive",
    b"\x93NUMPY": "a NumPy .npy file",
}
_TEXT_SNIFF = 512  # bytes looked at to call a file text


def is_remote(path: str) -> bool:
    """True for URLs read through uproot/fsspec (e.g. ``root://`` via fsspec-xrootd): no local check possible."""
    return path.startswith(REMOTE_PREFIXES)


def detect_format(path: str | Path) -> str:
    """The format of a file: a ROOT file's flavour, else the scouting format (``scouting-run2``/``scouting-run3``).

    A ROOT file is ``l1ntuple`` unless its ``Events`` tree is a NanoAOD (``nanoaod``), an L1 scouting NanoAOD
    (``l1scouting-nano``) or a CMSSW EDM file (``l1scouting-edm``): :func:`l1refit.formats.rootfile.flavour`,
    which loads uproot.

    Remote URLs cannot be sniffed cheaply; they are taken as L1Ntuples (the only format served over xrootd).
    Any other file is a FormatError that says what the file is (Parquet, text, … by its first bytes) and which
    formats are accepted.
    """
    if is_remote(str(path)):
        return "l1ntuple"
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as stream:
        head = stream.read(_TEXT_SNIFF)
    # "root" then the big-endian file version (e.g. 62206 for ROOT 6.22/06); a text file starting "root:"
    # (like /etc/passwd) fails the version check
    if head[:4] == ROOT_MAGIC and len(head) >= 8 and 0 < int.from_bytes(head[4:8], "big") < 1_000_000:
        from l1refit.formats import rootfile  # imported here: it loads uproot

        return rootfile.flavour(path) or "l1ntuple"
    what = describe_other(head)
    if what is not None:
        raise FormatError(path, f"is {what}, not an accepted input; {ACCEPTED}")
    from l1refit.formats import scouting  # imported here: it loads awkward and numba

    try:
        return scouting.detect_format(path)
    except FormatError as err:  # not a scouting file either: add which formats are accepted
        what = str(err).removeprefix(f"{path} at byte offset {err.offset}: ")
        if not what.startswith("neither"):
            raise
        raise FormatError(path, f"{what}; {ACCEPTED}", offset=err.offset) from None


def describe_other(head: bytes) -> str | None:
    """What a file that no reader here takes is (``"a Parquet file"``, ``"a text file …"``), or None.

    ``head`` is the file's first bytes. Text is bytes that decode as UTF-8 to printable characters and white
    space; a scouting file is never text (a Run-3 file starts with ``RAW_`` and is told apart before this).
    """
    if head[:4] in (b"RAW_", b"BZh1", b"BZh2", b"BZh3", b"BZh4", b"BZh5", b"BZh6", b"BZh7", b"BZh8", b"BZh9"):
        return None
    for magic, what in OTHER_MAGICS.items():
        if head.startswith(magic):
            return f"{what} (magic {repr(magic)[2:-1]})"
    if head and _is_text(head):
        first = next((line for line in head.decode("utf-8", "replace").splitlines() if line.strip()), "")
        return f"a text file (it starts {first[:40]!r})"
    return None


def _is_text(head: bytes) -> bool:
    for cut in range(4):  # a multi-byte character may be cut at the end of the sniffed bytes
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return bool(text) and all(c.isprintable() or c in "\t\n\r\f\v" for c in text)
    return False


def check_format(path: str | Path, fmt: str | None) -> str:
    """The detected format of ``path``; with ``fmt`` given, a file of another format is a FormatError naming both."""
    detected = detect_format(path)
    if fmt is not None and fmt != detected:
        raise FormatError(path, f"is a {detected} file, but the format {fmt!r} was expected")
    return detected
