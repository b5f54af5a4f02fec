"""Writing output files: atomically (never a half-written file under its final name), with fixed options.

The same table gives the same bytes: CSV floats have one format, Parquet files one set of write options.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

# pyarrow.parquet.ParquetWriter options of the skims and refit outputs: snappy is the fastest to write, and
# dictionaries save little on these numeric columns
PARQUET_OPTIONS = MappingProxyType({"compression": "snappy", "use_dictionary": False})


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name lives in the same directory so the final ``os.replace`` is atomic on POSIX. On any
    exception the temporary file is removed and the final name is left untouched (absent or the old file).
    The temporary name keeps the final suffix so libraries that pick a writer by extension still work.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.tmp{os.getpid()}{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_csv(frame, path: str | os.PathLike, float_format: str = "%.6g") -> None:
    """A table as CSV, atomically, with a fixed float format and line ending: the same table, the same bytes."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")
