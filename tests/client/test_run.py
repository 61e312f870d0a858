"""The `run` context manager: started, then succeeded, failed with the message, or cancelled."""

from __future__ import annotations

import pytest

from ledger.application import JobLedger
from ledger.client import AsyncLedgerClient, LedgerClient
from tests.client.stored import event_names


def test_a_block_that_ends_records_succeeded_with_its_outcome(
    client: LedgerClient, ledger: JobLedger
) -> None:
    client.create_job("export", id="job-1")
    with client.run("job-1") as run:
        run.progress(50, current_step="half")
        run.set_outcome(records_processed=8, result={"file": "x.csv"})
    job = client.get("job-1")
    assert (job.status, job.records_processed, job.result) == ("completed", 8, {"file": "x.csv"})
    assert event_names(ledger, "job-1") == ["Created", "Started", "Progressed", "Succeeded"]


def test_a_block_that_raises_records_failed_with_the_message_and_reraises(
    client: LedgerClient, ledger: JobLedger
) -> None:
    client.create_job("export", id="job-1")
    with pytest.raises(ValueError, match="bad row 17"), client.run("job-1"):
        raise ValueError("bad row 17")
    job = client.get("job-1")
    assert (job.status, job.error_message) == ("failed", "bad row 17")
    assert job.error_details == {"exception": "builtins.ValueError"}
    assert event_names(ledger, "job-1") == ["Created", "Started", "Failed"]


def test_an_interrupted_block_records_cancelled(client: LedgerClient) -> None:
    client.create_job("export", id="job-1")
    with pytest.raises(KeyboardInterrupt), client.run("job-1"):
        raise KeyboardInterrupt
    job = client.get("job-1")
    assert (job.status, job.cancel_reason) == ("cancelled", "interrupted: KeyboardInterrupt")


async def test_the_async_block_records_succeeded_or_failed(base_url: str, token: str) -> None:
    async with AsyncLedgerClient(base_url, token) as client:
        await client.create_job("export", id="job-ok")
        await client.create_job("export", id="job-bad")
        async with client.run("job-ok") as run:
            await run.progress(10)
        with pytest.raises(RuntimeError):
            async with client.run("job-bad"):
                raise RuntimeError("upstream said no")
        ok, bad = await client.get("job-ok"), await client.get("job-bad")
    assert (ok.status, ok.progress) == ("completed", 100)
    assert (bad.status, bad.error_message) == ("failed", "upstream said no")
