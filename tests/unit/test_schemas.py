"""API bodies against the native API document's own examples, and the error map (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from api.idempotency import unstorable
from api.problems import BadField, field_of_msgspec_error, problem_of
from api.schemas import (
    CreateJob,
    EventBatch,
    Failed,
    JobEvent,
    JobList,
    JobProgress,
    PageInfo,
    Progressed,
    RunningJob,
    Started,
    iso,
    to_command,
    to_job,
    to_progress,
)
from ledger.commands import Fail, RecordProgress, Start
from ledger.errors import (
    IdempotencyKeyReused,
    InvalidCommand,
    InvalidTransition,
    JobAlreadyExists,
    JobGone,
    JobNotFound,
    VersionConflict,
)
from ledger.tokens import split_token
from projections.rows import JobRow
from projections.views import RUNNING_VIEW

# Seed 002 ("Jobs Endpoints"), the response examples as published.
SEED_LIST = {
    "jobs": [
        {
            "id": "job-123",
            "job_type": "full_sync",
            "status": "completed",
            "progress": 100,
            "start_time": "2024-02-01T10:00:00Z",
            "end_time": "2024-02-01T10:15:00Z",
            "duration_ms": 900000,
            "records_created": 150,
            "records_updated": 45,
            "records_deleted": 10,
        }
    ],
    "pageInfo": {"hasNextPage": True, "endCursor": "cursor-token"},
}
SEED_PROGRESS = {
    "id": "job-123",
    "status": "running",
    "progress": 65,
    "current_step": "Processing accounts",
    "records_processed": 650,
    "total_records": 1000,
    "elapsed_ms": 45000,
}
SEED_RUNNING = {
    "id": "job-123",
    "job_type": "account_sync",
    "status": "running",
    "progress": 45,
    "start_time": "2024-02-01T10:00:00Z",
}

START = datetime(2024, 2, 1, 10, 0, tzinfo=UTC)
END = START + timedelta(minutes=15)


def seed_row(**changes: Any) -> JobRow:
    values: dict[str, Any] = {
        "tenant": "acme", "id": "job-123", "job_type": "full_sync", "name": None,
        "status": "completed", "progress": 100, "current_step": None, "records_processed": 205,
        "total_records": None, "records_created": 150, "records_updated": 45,
        "records_deleted": 10, "start_time": START, "end_time": END, "duration_ms": 900000,
        "created_at": START, "updated_at": END, "error_message": None, "error_details": None,
        "error_history": [], "parameters": {}, "labels": {}, "counters": {}, "result": None,
        "cancel_reason": None, "attempt": 1, "max_attempts": 1, "created_by": "tok_1",
        "version": 3, "position": 42,
    }  # fmt: skip
    values.update(changes)
    return JobRow(**values)


def test_a_job_has_every_field_of_the_seed_example_with_its_values() -> None:
    encoded = msgspec.to_builtins(to_job(seed_row()))
    example = SEED_LIST["jobs"][0]  # type: ignore[index]
    assert set(example) <= set(encoded)
    for name, value in example.items():
        if name.endswith("_time"):
            assert encoded[name] == value.replace("Z", ".000Z")
        else:
            assert encoded[name] == value, name


def test_the_list_wraps_jobs_and_page_info_in_the_seed_spelling() -> None:
    page = JobList(jobs=[], page_info=PageInfo(has_next_page=True, end_cursor="cursor-token"))
    encoded = msgspec.json.decode(msgspec.json.encode(page))
    assert encoded == {"jobs": [], "pageInfo": SEED_LIST["pageInfo"]}


def test_progress_has_exactly_the_seed_fields() -> None:
    row = seed_row(
        status="running",
        progress=65,
        current_step="Processing accounts",
        records_processed=650,
        total_records=1000,
        end_time=None,
        duration_ms=None,
    )
    progress = to_progress(row, now=START + timedelta(seconds=45))
    assert msgspec.to_builtins(progress) == SEED_PROGRESS
    assert set(JobProgress.__struct_fields__) == set(SEED_PROGRESS)


def test_elapsed_is_the_duration_once_ended_and_null_before_a_start() -> None:
    assert to_progress(seed_row(), now=END + timedelta(days=1)).elapsed_ms == 900000
    pending = seed_row(status="pending", start_time=None, end_time=None, duration_ms=None)
    assert to_progress(pending, now=END).elapsed_ms is None


def test_a_running_job_has_exactly_the_seed_fields_in_view_order() -> None:
    running = msgspec.convert(SEED_RUNNING, RunningJob)
    assert msgspec.to_builtins(running) == SEED_RUNNING
    assert RunningJob.__struct_fields__ == RUNNING_VIEW


def test_times_are_utc_with_milliseconds_and_a_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2024, 2, 1, 12, 0, 0, 123456, tzinfo=plus_two)
    assert iso(moment) == "2024-02-01T10:00:00.123Z"


def test_event_bodies_are_a_union_tagged_by_type() -> None:
    decode = msgspec.json.Decoder(JobEvent).decode
    assert decode(b'{"type": "started"}') == Started()
    body = decode(b'{"type": "progress", "progress": 65, "records_processed": 650}')
    assert isinstance(body, Progressed)
    assert to_command(body) == RecordProgress(progress=65, records_processed=650)
    failed = decode(b'{"type": "failed", "error_message": "boom", "error_details": {"a": 1}}')
    assert isinstance(failed, Failed)
    assert to_command(failed) == Fail(error_message="boom", error_details={"a": 1})
    assert to_command(decode(b'{"type": "started"}')) == Start()


def test_batch_items_carry_their_job_id() -> None:
    batch = msgspec.json.decode(
        b'{"events": [{"job_id": "job-1", "type": "cancelled", "reason": "no"}]}',
        type=EventBatch,
    )
    (item,) = batch.events
    assert item.job_id == "job-1"


def test_create_leaves_the_id_unset_when_not_sent() -> None:
    body = msgspec.json.decode(b'{"job_type": "full_sync"}', type=CreateJob)
    assert body.id is msgspec.UNSET and body.tenant is msgspec.UNSET
    assert (body.max_attempts, body.parameters, body.labels) == (1, {}, {})


@pytest.mark.parametrize(
    ("raw", "type_", "field"),
    [
        (b'{"type": "progress", "progress": 101}', JobEvent, "progress"),
        (b'{"type": "started", "extra": 1}', JobEvent, "extra"),
        (b'{"job_type": "x", "id": "has space"}', CreateJob, "id"),
        (b'{"job_type": "x", "labels": {"k": 5}}', CreateJob, "labels"),
        (b"{}", CreateJob, "job_type"),
        (b'{"events": [{"type": "started"}]}', EventBatch, "events[0].job_id"),
        (b"[]", CreateJob, "body"),
    ],
)
def test_a_validation_message_names_its_field(raw: bytes, type_: Any, field: str) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.json.decode(raw, type=type_)
    assert field_of_msgspec_error(str(refused.value))[0] == field


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (JobNotFound("j"), 404, "job-not-found"),
        (JobGone("j"), 410, "job-deleted"),
        (JobAlreadyExists("j"), 409, "job-exists"),
        (InvalidTransition("j", "completed", "start"), 409, "invalid-transition"),
        (InvalidCommand("progress", "too big"), 400, "invalid-field"),
        (VersionConflict("j", 3, 4), 412, "version-mismatch"),
        (IdempotencyKeyReused("k"), 422, "idempotency-key-reused"),
        (BadField("first", "too big"), 400, "invalid-field"),
        (RuntimeError("secret internals"), 500, "internal-error"),
    ],
)
def test_every_error_maps_to_one_problem(error: Exception, status: int, slug: str) -> None:
    problem = problem_of(error)
    document = problem.document()
    assert (problem.status, document["status"]) == (status, status)
    assert document["type"].endswith("/" + slug)
    assert "secret internals" not in document["detail"]


def test_a_conflict_names_the_jobs_status() -> None:
    document = problem_of(InvalidTransition("j", "completed", "start")).document()
    assert document["job_status"] == "completed" and document["status"] == 409


def test_unstorable_values_are_found_with_their_path() -> None:
    assert unstorable({"a": [1, {"b": "x\x00"}]}) == ("a[1].b", "must not contain U+0000")
    assert unstorable({"fine": ["yes", 1, None]}) is None


def test_tokens_split_into_id_and_secret() -> None:
    assert split_token("ltk_tok_abc.s3cr.et") == ("tok_abc", "s3cr.et")
    for bad in ("tok_abc.secret", "ltk_.secret", "ltk_tok_abc", "ltk_tok_abc.", ""):
        assert split_token(bad) is None
