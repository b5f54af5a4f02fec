"""Logging and progress for every stage and command: timestamped lines in rule logs, a bar on a terminal.

Library code logs through ``logging.getLogger(__name__)``; :func:`configure` (called once by a rule's adapter or
the CLI) decides where the lines go. :func:`progress` wraps a long loop: on a terminal it draws a tqdm bar, in a
rule log (not a terminal) it writes a progress line at most every ``every`` seconds, so logs stay readable.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send every ``l1refit`` (and warnings') log line to ``stream`` (default stderr), timestamped."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("l1refit").setLevel(level)
    logging.captureWarnings(True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    logger: logging.Logger | None = None,
    every: float = 30.0,
) -> Iterator[T]:
    """Iterate ``items`` with progress: a tqdm bar on a terminal, else a log line every ``every`` seconds.

    ``total`` (the number of items, or None when unknown) only changes what is shown, never the iteration.
    """
    if _is_terminal(sys.stderr):
        yield from tqdm(items, total=total, desc=desc, unit=unit, dynamic_ncols=True)
        return
    log = logger or logging.getLogger("l1refit.progress")
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every:
            last = now
            of = f"/{total} ({100.0 * done / total:.0f} %)" if total else ""
            log.info("%s: %d%s %s, %.0f s", desc, done, of, unit, now - start)
    log.info("%s: %d %s done in %.1f s", desc, done, unit, time.monotonic() - start)
