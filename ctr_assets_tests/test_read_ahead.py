from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from ctr_assets.db.read_ahead import read_ahead


class _Reader:
    """A batch reader that can fail part-way and tells whether it was read to the end."""

    def __init__(self, batches: int, fail_at: int | None = None) -> None:
        self.batches, self.fail_at, self.served = batches, fail_at, 0

    def __iter__(self):
        for index in range(self.batches):
            if index == self.fail_at:
                raise OSError("connection lost")
            self.served += 1
            yield pa.record_batch({"n": [index]})


def _read_all(reader: _Reader, seen: list[int]) -> None:
    with read_ahead(reader) as batches:
        for batch in batches:
            seen.append(batch["n"][0].as_py())


def test_read_ahead_keeps_the_order_and_raises_a_read_error_in_the_reader() -> None:
    seen: list[int] = []
    _read_all(_Reader(50), seen)
    assert seen == list(range(50))
    seen.clear()
    with pytest.raises(OSError, match="connection lost"):
        _read_all(_Reader(50, fail_at=20), seen)
    assert seen == list(range(20))  # every batch read before the error, in order


def _stop_after_one(reader: _Reader) -> None:
    with read_ahead(reader, depth=2) as batches:
        next(batches)
        raise RuntimeError("screening failed")


def test_read_ahead_stops_reading_when_the_consumer_stops() -> None:
    reader = _Reader(1_000)
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="screening failed"):
        _stop_after_one(reader)
    assert set(threading.enumerate()) == before  # the reading thread is gone
    assert reader.served <= 5  # it stopped within the read-ahead, not at the end


def test_read_ahead_needs_room_for_one_batch() -> None:
    with pytest.raises(ValueError, match="at least 1"), read_ahead(_Reader(1), depth=0):
        pass
