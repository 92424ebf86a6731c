"""Reading the next Arrow batch off the connection while the last one is being used.

The driver fetches and decodes in native code, outside the GIL, so a reader thread
keeps the server streaming while the consuming thread screens or converts; at most
`depth` batches wait in between, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

Batch = TypeVar("Batch")

_DONE = object()
_POLL_S = 0.05


@contextlib.contextmanager
def read_ahead(reader: Iterable[Batch], depth: int = 2) -> Iterator[Iterator[Batch]]:
    """Iterates `reader` on a background thread, up to `depth` batches ahead.

    Leaving the block (at the end, on an error, or part-way through) stops the thread
    before the caller can close the reader's connection; a read error is raised in the
    consuming thread, after the batches read before it.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                waiting.put(item, timeout=_POLL_S)
                return True
        return False

    def read() -> None:
        try:
            for batch in reader:
                if not put(batch):
                    return
        except BaseException as error:  # handed to the consuming thread
            put(error)
            return
        put(_DONE)

    def batches() -> Iterator[Batch]:
        while (item := waiting.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item

    thread = threading.Thread(target=read, name="arrow-read-ahead", daemon=True)
    thread.start()
    try:
        yield batches()
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):  # make room: a blocked reader sees the stop
                waiting.get(timeout=_POLL_S)
        thread.join()
