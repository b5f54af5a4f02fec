"""Logging and progress for every stage and command: timestamped lines in rule logs, a bar on a terminal.

Library code logs through ``logging.getLogger(__name__)``; :func:`configure` (called once by a rule's adapter or
the CLI) decides where the lines go. :func:`progress` wraps a long loop: on a terminal it draws a tqdm bar, in a
rule log (not a terminal) it writes a progress line at most every ``every`` seconds, so logs stay readable.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
HANDLER_NAME = "l1refit"


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send every ``l1refit`` log line and Python warning to ``stream`` (default stderr), timestamped.

    Calling it again replaces its own handler only: handlers others installed (pytest's, a notebook's) stay.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    logging.captureWarnings(True)
    for name in ("l1refit", "py.warnings"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == HANDLER_NAME]:
            logger.removeHandler(old)
        logger.addHandler(handler)
    logging.getLogger("l1refit").setLevel(level)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _LogLines:
    """The non-terminal stand-in of a tqdm bar: a log line at most every ``every`` seconds, and one at the end."""

    def __init__(self, total: int | None, desc: str, unit: str, logger: logging.Logger, every: float):
        self.total, self.desc, self.unit, self.log, self.every = total, desc, unit, logger, every
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            of = f"/{self.total} ({100.0 * self.done / self.total:.0f} %)" if self.total else ""
            self.log.info("%s: %d%s %s, %.0f s", self.desc, self.done, of, self.unit, now - self.start)

    def close(self) -> None:
        self.log.info("%s: %d %s done in %.1f s", self.desc, self.done, self.unit, time.monotonic() - self.start)

    def abandon(self) -> None:
        self.log.debug("%s: stopped after %d %s", self.desc, self.done, self.unit)


@contextlib.contextmanager
def steps(
    *, total: int | None, desc: str, unit: str = "it", logger: logging.Logger | None = None, every: float = 30.0
) -> Iterator[Any]:
    """A progress handle with ``update(n)`` for work that is not a Python loop (e.g. an optimiser's evaluations).

    A tqdm bar on a terminal; elsewhere (a rule log) a progress line at most every ``every`` seconds.
    """
    if _is_terminal(sys.stderr):
        bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
    else:
        bar = _LogLines(total, desc, unit, logger or logging.getLogger("l1refit.progress"), every)
    try:
        yield bar
    except BaseException:
        getattr(bar, "abandon", bar.close)()
        raise
    bar.close()


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    logger: logging.Logger | None = None,
    every: float = 30.0,
) -> Iterator[T]:
    """Iterate ``items`` with progress (see :func:`steps`); ``total`` only changes what is shown."""
    with steps(total=total, desc=desc, unit=unit, logger=logger, every=every) as bar:
        for item in items:
            yield item
            bar.update()
