"""Writing output files: atomically (never a half-written file under its final name), with fixed options.

The same table gives the same bytes: CSV floats have one format, Parquet files one set of write options.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
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
    The temporary name keeps the final suffix so libraries that pick a writer by extension still work. A process
    killed outright (SIGKILL, a lost node) cannot clean up: the next writer of the same file removes the
    temporaries whose writing process no longer exists (:func:`remove_stale_temporaries`).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = final.with_name(f".{final.stem}.tmp{os.getpid()}{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Remove the temporaries of ``final`` left by writers that were killed (their process is gone)."""
    pattern = re.compile(rf"\.{re.escape(final.stem)}\.tmp(\d+){re.escape(final.suffix)}")
    removed = []
    for candidate in final.parent.glob(f".{glob.escape(final.stem)}.tmp*{glob.escape(final.suffix)}"):
        match = pattern.fullmatch(candidate.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def write_csv(frame, path: str | os.PathLike, float_format: str = "%.6g") -> None:
    """A table as CSV, atomically, with a fixed float format and line ending: the same table, the same bytes."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")
