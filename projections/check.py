"""The read models' side of `ledger verify`: each row against a fresh replay.

Each check works out the rows its model should hold from the replayed jobs alone
(the `Job` states after each event, never the projection's own code), up to the
position the model has reached in the same snapshot, and reports every row that
differs, is missing, or has no events behind it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

import msgspec

from ledger.domain import FINISHED, Job, JobStatus, stream_id
from ledger.verify import Problem, Replayed
from projections.intervals import Interval
from projections.jobs import row_from_record
from projections.rows import job_row
from projections.running import Active, body_of
from projections.stats import Counted
from projections.tracking import key_arrays
from projections.views import job_body

if TYPE_CHECKING:
    from collections.abc import Sequence

    import psycopg

    from ledger.verify import RowCheck

KEYS: Final = "(tenant, id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
POSITION: Final = (
    "SELECT coalesce(max(notification_id), 0) AS position FROM {}_tracking "
    "WHERE application_name = 'ledger'"
)
Step = tuple[Job.Event, int, Job]


class ModelCheck:
    """What every check shares: its position, the streams seen, and the counts."""

    name: str = ""
    tables: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.position = 0
        self.seen: set[str] = set()
        self.rows = 0

    def start(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        row = conn.execute(POSITION.format(self.name)).fetchone()
        self.position = row["position"] if row else 0

    def check(
        self, conn: psycopg.Connection[dict[str, Any]], replays: Sequence[Replayed]
    ) -> list[Problem]:
        self.seen.update(r.stream for r in replays)
        keys = key_arrays(r.stream for r in replays)
        stored = self.stored(conn, keys)
        problems: list[Problem] = []
        for replayed in replays:
            steps = replayed.upto(self.position)
            problems += self.compare(replayed.stream, steps, stored.get(replayed.stream))
        return problems

    def finish(self, conn: psycopg.Connection[dict[str, Any]]) -> tuple[list[Problem], str]:
        problems = []
        for table in self.tables:
            for row in conn.execute(f"SELECT DISTINCT tenant, id FROM {table}"):
                stream = stream_id(row["tenant"], row["id"])
                if stream not in self.seen:
                    problems.append(Problem(0, stream, 0, f"a {table} row has no events behind it"))
        return problems, self.summary()

    def summary(self) -> str:
        return f"{self.name}: {self.rows} rows equal a replay up to position {self.position}"

    def stored(
        self, conn: psycopg.Connection[dict[str, Any]], keys: tuple[list[str], list[str]]
    ) -> dict[str, Any]:
        raise NotImplementedError

    def compare(self, stream: str, steps: list[Step], stored: Any) -> list[Problem]:
        raise NotImplementedError


class JobsCheck(ModelCheck):
    """`jobs` rows and `deleted_jobs` tombstones."""

    name = "jobs"
    tables = ("jobs", "deleted_jobs")

    def stored(
        self, conn: psycopg.Connection[dict[str, Any]], keys: tuple[list[str], list[str]]
    ) -> dict[str, Any]:
        found: dict[str, Any] = defaultdict(lambda: [None, None, None])
        for record in conn.execute(f"SELECT * FROM jobs WHERE {KEYS}", keys):
            row = row_from_record(record)
            # A body written for another version is never served (queries.list_jobs).
            served = record["body"] if record["body_version"] == row.version else None
            found[stream_id(row.tenant, row.id)][0::2] = row, served
        tombstones = conn.execute(
            f"SELECT tenant, id, version, position FROM deleted_jobs WHERE {KEYS}",
            keys,
        )
        for record in tombstones:
            found[stream_id(record["tenant"], record["id"])][1] = (
                record["version"], record["position"],
            )  # fmt: skip
        return dict(found)

    def compare(self, stream: str, steps: list[Step], stored: Any) -> list[Problem]:
        row, tombstone, body = stored or (None, None, None)
        if not steps:
            if row is not None or tombstone is not None:
                return [Problem(0, stream, 0, "a jobs row exists before its job's first event")]
            return []
        _, position, job = steps[-1]
        if job.status is JobStatus.DELETED:
            expected_tombstone = (job.version, position)
            if row is not None:
                return [Problem(position, stream, job.version, "the deleted job still has a row")]
            if tombstone != expected_tombstone:
                return [
                    Problem(
                        position, stream, job.version,
                        f"deleted_jobs holds {tombstone}, the replay gives {expected_tombstone}",
                    )
                ]  # fmt: skip
            self.rows += 1
            return []
        if row is None:
            return [Problem(position, stream, job.version, "no jobs row; the replay has one")]
        expected = job_row(job, position)
        difference = differs(row, expected)
        if difference:
            return [Problem(position, stream, job.version, f"jobs row: {difference}")]
        # A body not written for the row (by an older release) is rendered when read.
        if body is not None and body != job_body(expected):
            return [Problem(position, stream, job.version, "jobs body: not the row's job")]
        self.rows += 1
        return []


class RunningCheck(ModelCheck):
    """`running_jobs`: running jobs, and those that may yet run (pending, failed with
    attempts left)."""

    name = "running_jobs"
    tables = ("running_jobs",)

    def stored(
        self, conn: psycopg.Connection[dict[str, Any]], keys: tuple[list[str], list[str]]
    ) -> dict[str, Any]:
        fields = ", ".join((*Active.__struct_fields__, "body", "body_version"))
        found = {}
        for r in conn.execute(f"SELECT {fields} FROM running_jobs WHERE {KEYS}", keys):
            body, body_version = r.pop("body"), r.pop("body_version")
            row = _struct(Active, r)
            # A body written for another version is never served (queries.running_jobs).
            served = body if body_version == row.version else None
            found[stream_id(row.tenant, row.id)] = row, served
        return found

    def compare(self, stream: str, steps: list[Step], stored: Any) -> list[Problem]:
        stored, body = stored or (None, None)
        expected = expected_active(steps[-1][2]) if steps else None
        position, version = (steps[-1][1], steps[-1][2].version) if steps else (0, 0)
        if expected is None and stored is None:
            return []
        if expected is None:
            return [Problem(position, stream, version, "a running_jobs row the replay has not")]
        if stored is None:
            return [Problem(position, stream, version, "no running_jobs row; the replay has one")]
        difference = differs(stored, expected)
        if difference:
            return [Problem(position, stream, version, f"running_jobs row: {difference}")]
        # A body not written for the row (by an older release) is written out when read.
        if body is not None and body != body_of(expected):
            return [Problem(position, stream, version, "running_jobs body: not the row's job")]
        self.rows += 1
        return []


class StatsCheck(ModelCheck):
    """`job_stats_jobs` (where each job counts) and the `job_stats` buckets."""

    name = "job_stats"
    tables = ("job_stats_jobs",)

    def __init__(self) -> None:
        super().__init__()
        self.buckets: defaultdict[tuple[str, str, str, date], list[int | None]] = defaultdict(
            lambda: [0, 0, 0, None, None]
        )

    def stored(
        self, conn: psycopg.Connection[dict[str, Any]], keys: tuple[list[str], list[str]]
    ) -> dict[str, Any]:
        fields = ", ".join(Counted.__struct_fields__)
        return {
            stream_id(r["tenant"], r["id"]): _struct(Counted, r)
            for r in conn.execute(f"SELECT {fields} FROM job_stats_jobs WHERE {KEYS}", keys)
        }

    def compare(self, stream: str, steps: list[Step], stored: Any) -> list[Problem]:
        expected = expected_counted(steps[-1][2]) if steps else None
        position, version = (steps[-1][1], steps[-1][2].version) if steps else (0, 0)
        if expected is not None:
            self._count(expected)
        if expected is None and stored is None:
            return []
        if expected is None:
            return [Problem(position, stream, version, "counted in job_stats; the replay is not")]
        if stored is None:
            return [Problem(position, stream, version, "not counted in job_stats; the replay is")]
        difference = differs(stored, expected)
        if difference:
            return [Problem(position, stream, version, f"job_stats_jobs row: {difference}")]
        self.rows += 1
        return []

    def finish(self, conn: psycopg.Connection[dict[str, Any]]) -> tuple[list[Problem], str]:
        problems, _ = super().finish(conn)
        stored = {
            (r["tenant"], r["job_type"], r["status"], r["day"]): [
                r["count"], r["duration_count"], r["duration_sum"], r["duration_min"],
                r["duration_max"],
            ]
            for r in conn.execute("SELECT * FROM job_stats")
        }  # fmt: skip
        for bucket in sorted(set(stored) | set(self.buckets)):
            have, want = stored.get(bucket), self.buckets.get(bucket)
            if have != want:
                problems.append(
                    Problem(
                        0, "", 0,
                        f"job_stats bucket {_bucket(bucket)} holds (count, durations, sum, min, "
                        f"max) {have}, the replay gives {want}",
                    )
                )  # fmt: skip
        line = (
            f"job_stats: {self.rows} jobs in {len(self.buckets)} buckets equal a replay "
            f"up to position {self.position}"
        )
        return problems, line

    def _count(self, counted: Counted) -> None:
        bucket = self.buckets[counted.bucket]
        bucket[0] = (bucket[0] or 0) + 1
        d = counted.duration_ms
        if d is not None:
            bucket[1] = (bucket[1] or 0) + 1
            bucket[2] = (bucket[2] or 0) + d
            bucket[3] = d if bucket[3] is None else min(bucket[3], d)
            bucket[4] = d if bucket[4] is None else max(bucket[4], d)


class IntervalsCheck(ModelCheck):
    """`job_status_intervals`: one interval per status a job has been in."""

    name = "job_status_intervals"
    tables = ("job_status_intervals",)

    def stored(
        self, conn: psycopg.Connection[dict[str, Any]], keys: tuple[list[str], list[str]]
    ) -> dict[str, Any]:
        fields = ", ".join(Interval.__struct_fields__)
        found: defaultdict[str, list[Interval]] = defaultdict(list)
        records = conn.execute(
            f"SELECT {fields} FROM job_status_intervals WHERE {KEYS} ORDER BY version",
            keys,
        )
        for r in records:
            found[stream_id(r["tenant"], r["id"])].append(_struct(Interval, r))
        return dict(found)

    def compare(self, stream: str, steps: list[Step], stored: Any) -> list[Problem]:
        expected = expected_intervals(steps)
        have: list[Interval] = stored or []
        for index in range(max(len(expected), len(have))):
            want = expected[index] if index < len(expected) else None
            got = have[index] if index < len(have) else None
            if want == got:
                continue
            version = (want or got).version  # type: ignore[union-attr]
            position = next((p for e, p, _ in steps if e.originator_version == version), 0)
            if want is None:
                what = "an interval the replay has not"
            elif got is None:
                what = f"no interval from version {version}; the replay has one"
            else:
                what = f"interval: {differs(got, want)}"
            return [Problem(position, stream, version, f"job_status_intervals {what}")]
        self.rows += len(have)
        return []


def row_checks() -> list[RowCheck]:
    """A check of each read model, for `ledger verify`."""
    return [JobsCheck(), RunningCheck(), StatsCheck(), IntervalsCheck()]


# -- the rows a replay gives ---------------------------------------------------------


def expected_active(job: Job) -> Active | None:
    """The running_jobs row of `job`: kept while it runs or may still run."""
    may_run = job.status in (JobStatus.PENDING, JobStatus.RUNNING) or (
        job.status is JobStatus.FAILED and job.attempt < job.max_attempts
    )
    if not may_run:
        return None
    return Active(
        tenant=job.tenant, id=job.job_id, job_type=job.job_type, status=job.status.value,
        progress=job.progress, current_step=job.current_step, start_time=job.start_time,
        updated_at=job.modified_on, attempt=job.attempt, max_attempts=job.max_attempts,
        version=job.version,
    )  # fmt: skip


def expected_counted(job: Job) -> Counted | None:
    """Where `job` counts in job_stats: its status and creation day, until deleted."""
    if job.status is JobStatus.DELETED:
        return None
    return Counted(
        tenant=job.tenant, id=job.job_id, job_type=job.job_type, status=job.status.value,
        day=job.created_on.astimezone(UTC).date(), start_time=job.start_time,
        duration_ms=job.duration_ms if job.status in FINISHED else None, version=job.version,
    )  # fmt: skip


def expected_intervals(steps: Sequence[Step]) -> list[Interval]:
    """One interval per status the replayed job went through, in order."""
    intervals: list[Interval] = []
    for event, _, job in steps:
        if intervals and intervals[-1].status == job.status.value:
            continue
        if intervals:
            intervals[-1].valid_to = event.timestamp
        intervals.append(
            Interval(
                tenant=job.tenant, id=job.job_id, version=job.version, job_type=job.job_type,
                status=job.status.value, valid_from=event.timestamp, valid_to=None,
                created_at=job.created_on, start_time=job.start_time,
                duration_ms=job.duration_ms if job.status in FINISHED else None,
            )
        )  # fmt: skip
    return intervals


def differs(stored: msgspec.Struct, expected: msgspec.Struct) -> str:
    """The first field where two rows differ, said for people ('' if they are equal)."""
    for name in type(expected).__struct_fields__:
        have, want = getattr(stored, name), getattr(expected, name)
        if _norm(have) != _norm(want):
            return f"{name} is {have!r}, the replay gives {want!r}"
    return ""


def _norm(value: object) -> object:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _struct(kind: type[Any], record: dict[str, Any]) -> Any:
    values = {k: _norm(v) for k, v in record.items()}
    return kind(**values)


def _bucket(bucket: tuple[str, str, str, date]) -> str:
    tenant, job_type, status, day = bucket
    return f"{tenant}/{job_type}/{status}/{day.isoformat()}"
