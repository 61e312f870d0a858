"""Progress of long commands: a bar with events/s on a terminal, plain lines otherwise.

On a terminal the bar is drawn by `rich` (kept up to date, and already what
Litestar's own CLI uses); into a file or a pipe it writes a line at most every
few seconds, so logs stay readable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:
    from rich.progress import Task
    from rich.text import Text

PLAIN_EVERY: Final = 2.0
"""Seconds between plain progress lines."""

Update = Callable[[int, int], None]
"""Report (done, total) events."""


def rate(events: int, seconds: float) -> str:
    """Events per second, for people."""
    return f"{events / seconds:,.0f} events/s" if seconds > 0 else "- events/s"


@contextmanager
def progress(label: str, out: TextIO) -> Iterator[Update]:
    """A progress display for `label` on `out`; yields the function to report with."""
    if out.isatty():
        with _bar(label, out) as draw:
            yield draw
        return
    started = last = monotonic()
    shown = -1

    def update(done: int, total: int) -> None:
        nonlocal last, shown
        now = monotonic()
        if done == shown or (now - last < PLAIN_EVERY and done < total):
            return
        last, shown = now, done
        print(f"{label}: {done}/{total} events ({rate(done, now - started)})", file=out)

    yield update


@contextmanager
def _bar(label: str, out: TextIO) -> Iterator[Update]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class EventsPerSecond(ProgressColumn):
        def render(self, task: Task) -> Text:
            # The mean over the run: rich's own speed needs seconds of samples.
            return Text(rate(int(task.completed), task.elapsed or 0.0))

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        EventsPerSecond(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(file=out), transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, done))

        yield update
