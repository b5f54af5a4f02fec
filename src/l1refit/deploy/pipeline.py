"""Overlap of reading, inference and writing in the refit: a reader thread that reads the next chunk while the
current one is inferred, and a writer thread that writes the previous one.

Parquet and ROOT decompression, onnxruntime and the Parquet encoder release the GIL, so on two cores the three
stages run side by side; on one core the threads cost next to nothing. At most ``depth`` chunks wait in each queue,
so memory stays bounded. An exception in either thread is raised in the caller, at its next step.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _End:
    """The reader's last message: the exception it stopped on, or None when the input was exhausted."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def read_ahead(items: Iterable[T], depth: int = 1, name: str = "l1refit-reader") -> Iterator[T]:
    """The items of ``items``, produced by a background thread that keeps up to ``depth`` of them ready.

    Stopping early (``close()`` of this generator, or an exception in the consumer) stops the thread and closes
    ``items`` in it, so the files it reads are closed as they would be without the thread.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message) -> bool:
        while not stop.is_set():
            try:
                ready.put(message, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    break
            else:
                put(_End(None))
        except BaseException as err:  # handed to the consumer, which raises it
            put(_End(err))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            message = ready.get()
            if isinstance(message, _End):
                if message.error is not None:
                    raise message.error
                return
            yield message
    finally:
        stop.set()
        thread.join()


class WriteBehind(Generic[R]):
    """``submit(item)`` runs ``write(item)`` in one background thread, in order, with at most ``depth`` writes
    pending; ``total`` is the sum of the writes' results once the block has ended."""

    def __init__(self, write: Callable[[object], R], depth: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._write, self._depth = write, depth
        self._pending: list[Future] = []
        self.total = 0

    def submit(self, item) -> None:
        self._pending.append(self._pool.submit(self._write, item))
        while len(self._pending) > self._depth:
            self.total += self._pending.pop(0).result()  # raises the writer's exception here

    def __enter__(self) -> WriteBehind[R]:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="l1refit-writer")
        return self

    def __exit__(self, kind, error, traceback) -> None:
        with contextlib.ExitStack() as stack:
            stack.callback(self._pool.shutdown, wait=True, cancel_futures=kind is not None)
            if kind is None:
                for future in self._pending:
                    self.total += future.result()
            self._pending.clear()
