"""The refit's reader and writer threads: order, bounded queues, errors raised in the caller, files closed."""

import threading
import time

import pytest

from l1refit.deploy.pipeline import WriteBehind, read_ahead


def test_read_ahead_keeps_the_order_and_reads_at_most_depth_ahead():
    produced = []

    def source():
        for k in range(20):
            produced.append(k)
            yield k

    seen = []
    for item in read_ahead(source(), depth=2):
        time.sleep(0.002)  # the consumer is slower: the reader must wait, not run away
        assert len(produced) <= item + 1 + 2 + 1  # this item, two queued, one in the reader's hands
        seen.append(item)
    assert seen == list(range(20))


def test_read_ahead_raises_the_readers_error_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in read_ahead(source()):
            got.append(item)
    assert got == [1, 2]


def test_read_ahead_closes_the_source_when_the_consumer_stops():
    closed = threading.Event()

    def source():
        try:
            yield from range(1000)
        finally:
            closed.set()

    items = read_ahead(source(), depth=1)
    assert next(items) == 0
    items.close()
    assert closed.wait(2.0)
    with pytest.raises(ValueError, match="depth"):
        next(read_ahead([], depth=0))


def test_write_behind_writes_in_order_and_sums_the_results():
    written, threads = [], set()

    def write(item):
        time.sleep(0.001)
        written.append(item)
        threads.add(threading.current_thread().name)
        return item

    with WriteBehind(write, depth=2) as behind:
        for k in range(30):
            behind.submit(k)
    assert written == list(range(30)) and behind.total == sum(range(30))
    assert all(name.startswith("l1refit-writer") for name in threads)


def test_write_behind_raises_the_writers_error_in_the_caller():
    def write(item):
        if item == 3:
            raise OSError("no space left")
        return 1

    with pytest.raises(OSError, match="no space left"), WriteBehind(write, depth=1) as behind:
        for k in range(10):
            behind.submit(k)
    # the last write fails: raised when the block ends
    with pytest.raises(OSError, match="no space left"), WriteBehind(write) as behind:
        for k in range(4):
            behind.submit(k)
