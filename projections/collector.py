"""Pausing Python's cyclic garbage collector while a batch is projected.

A batch allocates tens of thousands of objects (events, jobs, rows) that live until
it is written, so the collector would run over and over and scan them each time,
for a third of a catch-up's time. None of them form reference cycles; they are
freed by reference counting when the batch is done. The collector runs again
between batches, so cyclic garbage made meanwhile (by any thread) waits one batch.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold off automatic garbage collection in the block (nestable, thread-safe; a
    collector disabled by someone else stays disabled)."""
    global _pauses, _resume
    with _lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()
