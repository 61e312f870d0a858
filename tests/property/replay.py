"""Read models worked out independently from replays of the event log, and the
projections' tables read back, for tests to compare."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from ledger.application import JobLedger
from ledger.domain import FINISHED, Job, JobStatus
from ledger.settings import Settings
from projections.jobs import row_from_record
from projections.rows import JobRow, job_row
from projections.views import job_body

Key = tuple[str, str]
StatsKey = tuple[str, str, str, date]
StatsValue = tuple[int, int, int, int | None, int | None]
"""count, duration count, duration sum, min, max."""


def connect(settings: Settings) -> psycopg.Connection[dict[str, Any]]:
    conn = psycopg.connect(settings.database_url or "", autocommit=True, row_factory=dict_row)
    conn.execute(SQL("SET search_path TO {}").format(Identifier(settings.database_schema)))
    return conn


def replayed_jobs(settings: Settings, ledger: JobLedger) -> dict[Key, tuple[Job, int]]:
    """Every job (deleted ones too) replayed from its events, with its last position."""
    with connect(settings) as conn:
        streams = conn.execute(
            "SELECT originator_id, max(notification_id) AS position FROM ledger_events "
            "GROUP BY originator_id"
        ).fetchall()
    jobs: dict[Key, tuple[Job, int]] = {}
    for stream in streams:
        job: Job = ledger.repository.get(stream["originator_id"])
        jobs[(job.tenant, job.job_id)] = (job, stream["position"])
    return jobs


def expected_rows(replayed: dict[Key, tuple[Job, int]]) -> dict[Key, JobRow]:
    return {
        key: job_row(job, position)
        for key, (job, position) in replayed.items()
        if job.status is not JobStatus.DELETED
    }


def expected_deleted(replayed: dict[Key, tuple[Job, int]]) -> set[Key]:
    return {key for key, (job, _) in replayed.items() if job.status is JobStatus.DELETED}


def expected_running(replayed: dict[Key, tuple[Job, int]]) -> dict[Key, tuple[Any, ...]]:
    return {
        key: (job.job_type, job.progress, job.current_step, job.start_time, job.modified_on)
        for key, (job, _) in replayed.items()
        if job.status is JobStatus.RUNNING
    }


def expected_stats(replayed: dict[Key, tuple[Job, int]]) -> dict[StatsKey, StatsValue]:
    durations: defaultdict[StatsKey, list[int]] = defaultdict(list)
    counts: defaultdict[StatsKey, int] = defaultdict(int)
    for job, _ in replayed.values():
        if job.status is JobStatus.DELETED:
            continue
        key = (job.tenant, job.job_type, job.status.value, job.created_on.astimezone(UTC).date())
        counts[key] += 1
        if job.status in FINISHED and job.duration_ms is not None:
            durations[key].append(job.duration_ms)
    return {
        key: (
            count,
            len(durations[key]),
            sum(durations[key]),
            min(durations[key], default=None),
            max(durations[key], default=None),
        )
        for key, count in counts.items()
    }


def projected_rows(settings: Settings) -> dict[Key, JobRow]:
    with connect(settings) as conn:
        return {
            (r.tenant, r.id): r
            for r in map(row_from_record, conn.execute("SELECT * FROM jobs").fetchall())
        }


def projected_bodies(settings: Settings) -> dict[Key, bytes]:
    """Each job's body as the list serves it."""
    with connect(settings) as conn:
        return {
            (r["tenant"], r["id"]): r["body"] if r["body_version"] == r["version"] else None
            for r in conn.execute("SELECT * FROM jobs")
        }


def projected_deleted(settings: Settings) -> set[Key]:
    with connect(settings) as conn:
        return {(r["tenant"], r["id"]) for r in conn.execute("SELECT * FROM deleted_jobs")}


def projected_running(settings: Settings) -> dict[Key, tuple[Any, ...]]:
    with connect(settings) as conn:
        rows = conn.execute("SELECT * FROM running_jobs WHERE status = 'running'").fetchall()
    return {
        (r["tenant"], r["id"]): (
            r["job_type"], r["progress"], r["current_step"], r["start_time"], r["updated_at"]
        )
        for r in rows
    }


def projected_stats(settings: Settings) -> dict[StatsKey, StatsValue]:
    with connect(settings) as conn:
        rows = conn.execute("SELECT * FROM job_stats").fetchall()
    return {
        (r["tenant"], r["job_type"], r["status"], r["day"]): (
            r["count"], r["duration_count"], r["duration_sum"], r["duration_min"],
            r["duration_max"],
        )
        for r in rows
    }


def assert_projections_match_replay(settings: Settings, ledger: JobLedger) -> None:
    """Every read model equals what a fresh replay of the log gives."""
    replayed = replayed_jobs(settings, ledger)
    expected = expected_rows(replayed)
    assert projected_rows(settings) == expected
    assert projected_bodies(settings) == {key: job_body(row) for key, row in expected.items()}
    assert projected_deleted(settings) == expected_deleted(replayed)
    assert projected_running(settings) == expected_running(replayed)
    assert projected_stats(settings) == expected_stats(replayed)
