"""Each projection in a lane of its own: its batches in order, apart from the others'.

On a backlog a projection may start the next batch while another still writes the
last one, so one model's wait for PostgreSQL is another's time to fold, rather than
every model waiting for the slowest at each batch. A lane takes no batch after one
that failed: a projection's batches commit in order or not at all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from eventsourcing.persistence import Tracking

from projections.collector import collector_paused
from projections.tracking import Batch, Projector


class Skipped(Exception):
    """A batch not taken because the lane's batch before it failed."""


Sent = list[tuple[Projector, "Future[None]"]]


class Lanes:
    """Hands batches to projections, each projection's lane taking them in order."""

    def __init__(self) -> None:
        self._lanes: dict[int, tuple[ThreadPoolExecutor, list[Future[None] | None]]] = {}
        self._sent: deque[tuple[Sent, Tracking]] = deque()

    def send(self, projections: Sequence[Projector], batch: Batch, tracking: Tracking) -> None:
        """Queue `batch` (ending at `tracking`) for each of `projections`."""
        sent: Sent = []
        for projection in projections:
            executor, last = self._lane(projection)
            last[0] = done = executor.submit(_take, projection, batch, tracking, last[0])
            sent.append((projection, done))
        self._sent.append((sent, tracking))

    def settle(self, keep: int = 0) -> dict[str, int]:
        """Wait until at most `keep` batches are in flight; the position each projection
        reached meanwhile. Raises the first failure, once every batch sent has ended."""
        reached: dict[str, int] = {}
        while len(self._sent) > keep:
            sent, tracking = self._sent.popleft()
            for projection, done in sent:
                if done.exception() is not None:
                    self._drain()
                    raise _first_failure(sent)
                reached[projection.name] = tracking.notification_id
        return reached

    @property
    def in_flight(self) -> int:
        """Batches sent and not yet settled."""
        return len(self._sent)

    def close(self) -> None:
        for executor, _ in self._lanes.values():
            executor.shutdown(wait=True)
        self._lanes.clear()
        self._sent.clear()

    def _lane(self, projection: Projector) -> tuple[ThreadPoolExecutor, list[Future[None] | None]]:
        lane = self._lanes.get(id(projection))
        if lane is None:
            executor = ThreadPoolExecutor(1, f"ledger-project-{projection.name}")
            lane = self._lanes[id(projection)] = (executor, [None])
        return lane

    def _drain(self) -> None:
        """Wait for every batch still in flight, then forget them and the failure: the
        caller reads the positions again and starts over from them."""
        while self._sent:
            for _, done in self._sent.popleft()[0]:
                done.exception()
        for _, last in self._lanes.values():
            last[0] = None


def _take(
    projection: Projector, batch: Batch, tracking: Tracking, before: Future[None] | None
) -> None:
    # The lane is one thread, so the batch before has ended.
    if before is not None and before.exception() is not None:
        raise Skipped
    with collector_paused():
        projection.process_batch(batch, tracking)


def _first_failure(sent: Sent) -> BaseException:
    errors = [e for _, done in sent if (e := done.exception()) is not None]
    real = [e for e in errors if not isinstance(e, Skipped)]
    return (real or errors)[0]
