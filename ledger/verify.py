"""`ledger verify`: replay every stream, check every hash chain, and hand each replay
to the read-model checks, all in one snapshot of the database.

The events are read stream by stream in one REPEATABLE READ transaction, so the
log, the hashes and the read models are compared as they stood at one instant
while writes go on. Each stream must run 1, 2, 3... with no gap; each event's
stored hash must equal SHA-256 over the previous stored hash and the event's
canonical bytes (ledger/chain.py); each event must decode and apply to the job.
A hash with no event left is a deleted event. Problems are collected and the
first in log order is reported.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from time import monotonic
from typing import TYPE_CHECKING, Any, Final, Protocol

import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from ledger.chain import GENESIS, link
from ledger.domain import Job

if TYPE_CHECKING:
    from eventsourcing.persistence import Mapper

    from ledger.settings import Settings

STREAMS_PER_CHECK: Final = 500
"""Streams replayed before the read-model checks compare their rows."""
MAX_PROBLEMS: Final = 1000
FETCH: Final = 5000

COUNT_EVENTS: Final = (
    "SELECT count(*) AS n, coalesce(max(notification_id), 0) AS head FROM {events}"
)
SELECT_EVENTS: Final = (
    "SELECT e.originator_id, e.originator_version, e.topic, e.state, e.notification_id, h.hash "
    "FROM {events} e LEFT JOIN event_hashes h ON h.position = e.notification_id "
    "ORDER BY e.originator_id, e.originator_version"
)
SELECT_ORPHAN_HASHES: Final = (
    "SELECT h.position FROM event_hashes h LEFT JOIN {events} e "
    "ON e.notification_id = h.position WHERE e.notification_id IS NULL ORDER BY h.position"
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that differs: where (job, version, position) and what."""

    position: int
    """The event's global position (0 when the problem has none, as a missing row)."""
    job: str
    version: int
    what: str
    in_log: bool = True
    """False for a read-model row, which is only broken if the log is sound."""

    @property
    def order(self) -> tuple[bool, bool, int, str, int]:
        """The log's problems before the read models', each in log order, and last
        those no event can be named for."""
        return (not self.in_log, not self.position, self.position, self.job, self.version)

    def __str__(self) -> str:
        where = f"job {self.job}" if self.job else "log" if self.in_log else "read model"
        if self.version:
            where += f" version {self.version}"
        if self.position:
            where += f" position {self.position}"
        return f"{where}: {self.what}"


@dataclass(slots=True)
class Replayed:
    """One stream replayed: each event, its position, and the job just after it."""

    stream: str
    steps: list[tuple[Job.Event, int, Job]] = field(default_factory=list)
    events: int = 0
    """Events read, whether or not they replayed."""

    def upto(self, position: int) -> list[tuple[Job.Event, int, Job]]:
        """The steps a read model at `position` has taken."""
        return [step for step in self.steps if step[1] <= position]


class RowCheck(Protocol):
    """A read model's check: its rows against the replays (projections/check.py)."""

    name: str

    def start(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        """Read the model's position in the snapshot."""
        ...

    def check(
        self, conn: psycopg.Connection[dict[str, Any]], replays: Sequence[Replayed]
    ) -> list[Problem]:
        """Compare the rows of these streams with their replays."""
        ...

    def finish(self, conn: psycopg.Connection[dict[str, Any]]) -> tuple[list[Problem], str]:
        """Rows no replay accounts for, and a line saying what was checked."""
        ...


@dataclass(slots=True)
class Report:
    """What `verify` checked and what it found."""

    events: int = 0
    streams: int = 0
    head: int = 0
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    more_problems: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.order) if self.problems else None

    def add(self, problems: Sequence[Problem]) -> None:
        room = MAX_PROBLEMS - len(self.problems)
        self.problems.extend(problems[:room])
        self.more_problems = self.more_problems or len(problems) > room


Progress = Callable[[int, int], None]
"""Called with (events done, events in all) as the replay goes."""


def verify(
    settings: Settings,
    mapper: Mapper[str],
    checks: Sequence[RowCheck] = (),
    progress: Progress | None = None,
) -> Report:
    """Check the log's chains and replays, and each read model against the replays."""
    assert settings.database_url is not None
    report = Report()
    started = monotonic()
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(SQL("SET search_path TO {}").format(Identifier(settings.database_schema)))
        events = Identifier("ledger_events")
        counted = conn.execute(SQL(COUNT_EVENTS).format(events=events)).fetchone()
        assert counted is not None
        total, report.head = counted["n"], counted["head"]
        orphans = [
            r["position"] for r in conn.execute(SQL(SELECT_ORPHAN_HASHES).format(events=events))
        ]
        for check in checks:
            check.start(conn)
        batch: list[Replayed] = []
        claimed: set[int] = set()
        hashes_ok = True
        with conn.cursor(name="ledger_verify_events") as rows:
            rows.itersize = FETCH
            rows.execute(SQL(SELECT_EVENTS).format(events=events))
            for replayed, problems in _replay_streams(rows, mapper, orphans, claimed):
                hashes_ok = hashes_ok and not problems
                report.add(problems)
                report.streams += 1
                report.events += replayed.events
                batch.append(replayed)
                if len(batch) >= STREAMS_PER_CHECK:
                    _check(conn, checks, batch, report)
                    batch = []
                    if progress is not None:
                        progress(report.events, total)
        _check(conn, checks, batch, report)
        report.add(
            [
                Problem(p, "", 0, "a hash is stored for this position but its event is gone")
                for p in orphans
                if p not in claimed
            ]
        )
        for check in checks:
            problems, line = check.finish(conn)
            report.add([replace(p, in_log=False) for p in problems])
            report.lines.append(line)
        conn.rollback()
    if progress is not None:
        progress(report.events, total)
    chain_line = f"chain: {report.events} events in {report.streams} streams, " + (
        "every hash matches" if hashes_ok and not orphans else "BROKEN"
    )
    report.lines.insert(0, chain_line)
    report.seconds = monotonic() - started
    return report


def _check(
    conn: psycopg.Connection[dict[str, Any]],
    checks: Sequence[RowCheck],
    batch: Sequence[Replayed],
    report: Report,
) -> None:
    if not batch:
        return
    for check in checks:
        report.add([replace(p, in_log=False) for p in check.check(conn, batch)])


def _replay_streams(
    rows: Iterator[dict[str, Any]], mapper: Mapper[str], orphans: Sequence[int], claimed: set[int]
) -> Iterator[tuple[Replayed, list[Problem]]]:
    """Each stream, replayed, with the problems its events have (orphaned hashes that
    name a missing event are added to `claimed`)."""
    current: Replayed | None = None
    problems: list[Problem] = []
    previous_hash = GENESIS
    previous_position = previous_version = 0
    job: Job | None = None
    for row in rows:
        stream: str = row["originator_id"]
        version: int = row["originator_version"]
        position: int = row["notification_id"]
        state = bytes(row["state"])
        if current is None or stream != current.stream:
            if current is not None:
                yield current, problems
            current, problems = Replayed(stream), []
            previous_hash, previous_position, previous_version, job = GENESIS, 0, 0, None
        if version != previous_version + 1:
            missing = _missing(stream, previous_version + 1, previous_position, position, orphans)
            claimed.add(missing.position)
            problems.append(missing)
        previous_version = version
        current.events += 1
        stored = None if row["hash"] is None else bytes(row["hash"])
        digest = link(previous_hash, stream, version, row["topic"], state)
        if stored is None:
            problems.append(Problem(position, stream, version, "no hash was recorded"))
        elif stored != digest:
            problems.append(
                Problem(
                    position,
                    stream,
                    version,
                    "the stored hash does not match the event: the event was changed, "
                    "or an event before it is missing",
                )
            )
        previous_hash = stored if stored is not None else digest
        previous_position = position
        try:
            event = mapper.to_domain_event(
                StoredEvent(
                    originator_id=stream, originator_version=version, topic=row["topic"],
                    state=state,
                )
            )  # fmt: skip
            if not isinstance(event, Job.Event):
                raise TypeError(f"{type(event).__name__} is not a job event")
            job = event.mutate(job)
            assert job is not None
        except Exception as error:
            problems.append(
                Problem(position, stream, version, f"the event does not replay: {error}")
            )
            continue
        current.steps.append((event, position, copy.copy(job)))
    if current is not None:
        yield current, problems


def _missing(stream: str, version: int, before: int, after: int, orphans: Sequence[int]) -> Problem:
    """The problem of a gap in a stream: the event at `version` is not in the log."""
    between = [p for p in orphans if before < p < after]
    position = between[0] if len(between) == 1 else 0
    where = "" if position else f" (between positions {before} and {after})"
    return Problem(position or after, stream, version, f"the event is missing from the log{where}")
