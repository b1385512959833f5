"""The unit tests' blockbuster guard (tests/unit/conftest.py) is on: a blocking call on the
event loop fails the test, the same call off the loop does not."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from blockbuster import BlockingError


async def test_given_the_event_loop_when_a_test_sleeps_blocking_then_it_fails():
    with pytest.raises(BlockingError, match="sleep"):
        time.sleep(0.001)  # noqa: ASYNC251 - the blocking call under test


async def test_given_the_event_loop_when_a_file_is_written_then_it_fails_but_not_in_a_thread(tmp_path):
    path = tmp_path / "f.txt"
    with pytest.raises(BlockingError, match="write"):
        with open(path, "w") as fh:  # noqa: ASYNC230 - the blocking call under test
            fh.write("x" * 10)
            fh.flush()
    await asyncio.to_thread(path.write_text, "fine in a thread")
    assert await asyncio.to_thread(path.read_text) == "fine in a thread"


async def test_given_the_event_loop_when_writing_to_dev_null_then_it_is_allowed():
    with open(os.devnull, "w") as sink:  # noqa: ASYNC230 - what pytest's log-file handler does
        sink.write("a log record\n")
        sink.flush()


def test_given_no_event_loop_when_a_test_sleeps_then_nothing_is_said():
    time.sleep(0.001)  # a synchronous test blocks nobody
