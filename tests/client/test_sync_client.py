"""The blocking client against a real server: every call, typed answers, typed refusals."""

from __future__ import annotations

import threading

import pytest

from ledger.application import JobLedger
from ledger.client import (
    Conflict,
    Gone,
    Job,
    JobChange,
    LedgerClient,
    NotFound,
    PreconditionFailed,
    Unauthorized,
    Unavailable,
)
from ledger.client.calls import RetryPolicy
from tests.client.stored import event_names


def test_a_job_walks_through_create_start_progress_succeed(
    client: LedgerClient, ledger: JobLedger
) -> None:
    job = client.create_job("full_sync", id="job-1", name="Nightly", total_records=10)
    assert isinstance(job, Job)
    assert (job.id, job.status, job.version, job.tenant) == ("job-1", "pending", 1, "acme")

    started = client.start("job-1")
    assert (started.status, started.version) == ("running", 2)
    client.progress("job-1", 40, current_step="loading", records_processed=4)
    assert client.get("job-1").progress == 40  # read-your-writes: no waiting by hand
    done = client.succeed("job-1", records_processed=10, result={"rows": 10})

    job = client.get("job-1")
    assert (job.status, job.progress, job.records_processed) == ("completed", 100, 10)
    assert job.result == {"rows": 10} and job.version == done.version == 4
    assert job.position == done.position == client.position
    assert event_names(ledger, "job-1") == ["Created", "Started", "Progressed", "Succeeded"]


def test_fail_records_the_error_and_cancel_stops_a_pending_job(client: LedgerClient) -> None:
    client.create_job("export", id="job-f")
    client.start("job-f")
    client.fail("job-f", "disk full", error_details={"device": "sda"})
    failed = client.get("job-f")
    assert (failed.status, failed.error_message) == ("failed", "disk full")
    assert failed.error_details == {"device": "sda"}

    client.create_job("export", id="job-c")
    assert client.cancel("job-c", "not needed").status == "cancelled"
    assert client.get("job-c").cancel_reason == "not needed"


def test_refusals_raise_typed_errors_with_the_problem(client: LedgerClient) -> None:
    client.create_job("export", id="job-r")
    with pytest.raises(NotFound) as missing:
        client.get("job-nope")
    assert missing.value.status == 404
    with pytest.raises(Conflict) as refused:
        client.succeed("job-r")
    assert refused.value.problem["job_status"] == "pending"
    with pytest.raises(Conflict):
        client.create_job("export", id="job-r")
    with pytest.raises(PreconditionFailed):
        client.start("job-r", if_version=7)
    assert client.start("job-r", if_version=1).version == 2
    client.batch([{"job_id": "job-r", "type": "deleted"}])
    with pytest.raises(Gone):
        client.get("job-r")


def test_a_bad_token_is_unauthorized(base_url: str) -> None:
    with LedgerClient(base_url, "wrong") as stranger, pytest.raises(Unauthorized) as refused:
        stranger.get("job-1")
    assert refused.value.status == 401


def test_list_iterates_over_every_page(client: LedgerClient) -> None:
    for n in range(7):
        client.create_job("full_sync" if n % 2 else "export", id=f"job-{n}")
    listed = [job.id for job in client.list(page_size=3)]
    assert listed == [f"job-{n}" for n in reversed(range(7))]  # newest first, none twice
    exports = [job.id for job in client.list(job_type="export", page_size=2)]
    assert exports == ["job-6", "job-4", "job-2", "job-0"]
    assert [job.id for job in client.list(status="running")] == []


def test_stats_and_running_answer_typed(client: LedgerClient) -> None:
    for n in range(3):
        client.create_job("export", id=f"job-{n}")
    client.start("job-0")
    client.progress("job-0", 30)
    client.start("job-1")
    client.succeed("job-1")

    stats = client.stats("status")
    assert stats.total == 3
    assert {group.status: group.count for group in stats.groups} == {
        "pending": 1,
        "running": 1,
        "completed": 1,
    }
    running = client.running()
    assert [(job.id, job.progress) for job in running] == [("job-0", 30)]


def test_changes_reports_each_changed_job_in_log_order(client: LedgerClient) -> None:
    client.create_job("export", id="job-old")
    mark = client.position
    stop = threading.Event()
    seen: list[JobChange] = []

    def tail() -> None:
        for change in client.changes(after=mark, poll_interval=0.05, stop=stop):
            seen.append(change)
            if change.job.id == "job-b" and change.job.status == "running":
                stop.set()

    tailing = threading.Thread(target=tail)
    tailing.start()
    client.create_job("export", id="job-a")
    client.create_job("export", id="job-b")
    client.start("job-b")
    tailing.join(timeout=10)
    assert not tailing.is_alive()
    assert "job-old" not in {change.job.id for change in seen}
    positions = [change.position for change in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert {change.job.id for change in seen} == {"job-a", "job-b"}
    assert seen[-1].job.status == "running" and seen[-1].position == client.position


def test_a_server_that_does_not_answer_is_unavailable_after_the_retries() -> None:
    quick = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02)
    with (
        LedgerClient("http://127.0.0.1:9", "t", retry=quick) as nowhere,
        pytest.raises(Unavailable),
    ):
        nowhere.create_job("export")
