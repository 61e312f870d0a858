"""The asyncio client: `AsyncLedgerClient`, its progress batcher and the `run` context manager.

It sends the same requests as `LedgerClient` (both are built from `ledger.client.calls`)
and retries them the same way, with `asyncio.sleep` between attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Self, TypeVar

import httpx

from ledger.client import calls
from ledger.client.calls import Call, RetryPolicy
from ledger.client.models import (
    BatchResult,
    BatchResults,
    ClientError,
    FeedEvent,
    Job,
    JobChange,
    JsonObject,
    Recorded,
    RunningJob,
    Stats,
    Unavailable,
)
from ledger.client.sync import USER_AGENT

T = TypeVar("T")
log = logging.getLogger("ledger.client")

Results = list[BatchResult]


class AsyncLedgerClient:
    """An asyncio client of the ledger's HTTP API; see `LedgerClient` for the behaviour."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        tenant: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        read_your_writes: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.tenant = tenant
        self.retry = retry or RetryPolicy()
        self.read_your_writes = read_your_writes
        self.position = 0
        """The highest log position this client's writes were answered with."""
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- writes ---------------------------------------------------------------------------

    async def create_job(
        self,
        job_type: str,
        *,
        id: str | None = None,
        name: str | None = None,
        parameters: JsonObject | None = None,
        labels: Mapping[str, str] | None = None,
        total_records: int | None = None,
        max_attempts: int | None = None,
        tenant: str | None = None,
    ) -> Job:
        """Create a pending job; without `id` the server makes one."""
        return await self._run(
            calls.create_job(
                job_type,
                id=id,
                name=name,
                parameters=parameters,
                labels=labels,
                total_records=total_records,
                max_attempts=max_attempts,
                tenant=tenant,
            )
        )

    async def start(self, job_id: str, *, if_version: int | None = None) -> Recorded:
        """Record that the job started (again, after a failure, while attempts remain)."""
        return await self._run(calls.record(job_id, "started", if_version))

    async def progress(
        self,
        job_id: str,
        progress: int | None = None,
        *,
        current_step: str | None = None,
        records_processed: int | None = None,
        total_records: int | None = None,
        records_created: int | None = None,
        records_updated: int | None = None,
        records_deleted: int | None = None,
        if_version: int | None = None,
    ) -> Recorded:
        """Record progress of a running job; only the fields given change."""
        return await self._run(
            calls.record(
                job_id,
                "progress",
                if_version,
                progress=progress,
                current_step=current_step,
                records_processed=records_processed,
                total_records=total_records,
                records_created=records_created,
                records_updated=records_updated,
                records_deleted=records_deleted,
            )
        )

    async def succeed(
        self,
        job_id: str,
        *,
        records_processed: int | None = None,
        records_created: int | None = None,
        records_updated: int | None = None,
        records_deleted: int | None = None,
        result: JsonObject | None = None,
        if_version: int | None = None,
    ) -> Recorded:
        """Record that the running job finished well."""
        return await self._run(
            calls.record(
                job_id,
                "succeeded",
                if_version,
                records_processed=records_processed,
                records_created=records_created,
                records_updated=records_updated,
                records_deleted=records_deleted,
                result=result,
            )
        )

    async def fail(
        self,
        job_id: str,
        error_message: str,
        *,
        error_details: JsonObject | None = None,
        if_version: int | None = None,
    ) -> Recorded:
        """Record that the running job failed, and why."""
        return await self._run(
            calls.record(
                job_id,
                "failed",
                if_version,
                error_message=error_message,
                error_details=error_details,
            )
        )

    async def cancel(
        self, job_id: str, reason: str | None = None, *, if_version: int | None = None
    ) -> Recorded:
        """Cancel a pending or running job."""
        return await self._run(calls.record(job_id, "cancelled", if_version, reason=reason))

    async def batch(self, events: list[JsonObject]) -> Results:
        """Post `{job_id, type, ...}` events in one request; one result per event, in order."""
        return self._saw((await self._run(calls.batch(events))).results)

    def batcher(self, *, max_events: int = 100, interval: float = 1.0) -> AsyncProgressBatcher:
        """A batcher that sends progress events in batches (by count or every `interval` s)."""
        return AsyncProgressBatcher(self, max_events=max_events, interval=interval)

    @asynccontextmanager
    async def run(
        self, job_id: str, *, batcher: AsyncProgressBatcher | None = None
    ) -> AsyncIterator[AsyncJobRun]:
        """Record `started`, then `succeeded` when the block ends, or `failed` with the
        exception's message when it raises (a cancelled task records `cancelled`)."""
        await self.start(job_id)
        run = AsyncJobRun(self, job_id, batcher)
        try:
            yield run
        except BaseException as error:
            if batcher is not None:
                await self._quietly(batcher.flush())
            if isinstance(error, Exception):
                await self._quietly(self.fail(job_id, **calls.failure_fields(error)))
            else:
                reason = f"interrupted: {type(error).__name__}"
                await self._quietly(self.cancel(job_id, reason))
            raise
        if batcher is not None:
            await batcher.flush()
        await self.succeed(job_id, **run.outcome)

    # -- reads ----------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        """One job with every detail."""
        return await self._run(calls.get(job_id))

    async def list(
        self,
        *,
        job_type: str | None = None,
        status: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncGenerator[Job, None]:
        """Every job that matches, newest first, fetched a page at a time."""
        after: str | None = None
        while True:
            page = await self._run(
                calls.page(
                    job_type=job_type,
                    status=status,
                    start_date=start_date,
                    end_date=end_date,
                    page_size=page_size,
                    after=after,
                )
            )
            for job in page.jobs:
                yield job
            if not page.page_info.has_next_page or page.page_info.end_cursor is None:
                return
            after = page.page_info.end_cursor

    async def running(self) -> tuple[RunningJob, ...]:
        """The jobs running now, the most recently started first."""
        return tuple((await self._run(calls.running())).jobs)

    async def stats(
        self,
        group_by: str = "status,job_type",
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> Stats:
        """Counts and durations grouped by any of status, job_type, day, tenant."""
        return await self._run(calls.stats(group_by, start_date, end_date))

    async def events(
        self, *, after: int = 0, poll_interval: float = 1.0, page_size: int = 1000
    ) -> AsyncGenerator[FeedEvent, None]:
        """Tail the tenant's event feed (auditor or admin tokens); see `LedgerClient.events`.

        Runs until the consumer stops iterating or the task is cancelled.
        """
        while True:
            page = await self._run(calls.feed(after, page_size))
            for event in page.events:
                yield event
            after = page.next
            if len(page.events) < page_size:
                await asyncio.sleep(poll_interval)

    async def changes(
        self, *, after: int = 0, job_type: str | None = None, poll_interval: float = 1.0
    ) -> AsyncGenerator[JobChange, None]:
        """Watch jobs change by polling the job list, with any token; see
        `LedgerClient.changes`. Runs until the consumer stops or the task is cancelled."""
        seen = after
        while True:
            reached = await self._reached()
            if reached > seen:
                changes = [
                    JobChange(position=job.position, job=job)
                    async for job in self.list(job_type=job_type)
                    if seen < job.position <= reached
                ]
                for change in sorted(changes, key=lambda change: change.position):
                    yield change
                seen = reached
            await asyncio.sleep(poll_interval)

    # -- transport ------------------------------------------------------------------------

    async def _reached(self) -> int:
        """The log position the read models have reached."""
        first = calls.page(
            job_type=None, status=None, start_date=None, end_date=None, page_size=1, after=None
        )
        response = await self._send(first)
        return int(response.headers.get(calls.POSITION_HEADER, "0"))

    async def _run(self, call: Call[T]) -> T:
        return call.decode(await self._send(call))

    async def _send(self, call: Call[Any]) -> httpx.Response:
        params = dict(call.params)
        if self.tenant is not None:
            params["tenant"] = self.tenant
        if not call.is_write and self.read_your_writes and self.position:
            params["min_position"] = self.position
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=params,
                    content=call.content(),
                    headers=call.headers(),
                )
            except calls.RETRIED_ERRORS as error:
                if attempt >= self.retry.attempts:
                    raise Unavailable(f"{call.method} {call.path}: {error!r}") from error
                log.info("retrying %s %s after %r", call.method, call.path, error)
            else:
                if not calls.should_retry(response):
                    break
                if attempt >= self.retry.attempts:
                    raise Unavailable(
                        f"{call.method} {call.path}: answered {response.status_code} "
                        f"through {attempt} attempts"
                    )
                log.info("retrying %s %s after %d", call.method, call.path, response.status_code)
            await asyncio.sleep(self.retry.delay(attempt, response))
        calls.raise_for_problem(response)
        if call.is_write and (position := response.headers.get(calls.POSITION_HEADER)):
            self.position = max(self.position, int(position))
        return response

    def _saw(self, results: Results) -> Results:
        """Remember the highest position a batch's events got, for read-your-writes."""
        self.position = max([self.position, *(r.position for r in results if r.position)])
        return results

    @staticmethod
    async def _quietly(record: Any) -> None:
        """Record an outcome without hiding the exception that is on its way out."""
        try:
            await record
        except ClientError:
            log.warning("could not record the job's outcome", exc_info=True)


class AsyncJobRun:
    """The job an async `run` block works on."""

    def __init__(
        self, client: AsyncLedgerClient, job_id: str, batcher: AsyncProgressBatcher | None
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.batcher = batcher
        self.outcome: JsonObject = {}

    async def progress(self, progress: int | None = None, **fields: Any) -> None:
        """Record progress, through the batcher when the run has one."""
        if self.batcher is not None:
            await self.batcher.progress(self.job_id, progress, **fields)
        else:
            await self.client.progress(self.job_id, progress, **fields)

    def set_outcome(self, **fields: Any) -> None:
        """Fields of the `succeeded` event: records_processed, ..., result."""
        self.outcome.update(fields)


class AsyncProgressBatcher:
    """The asyncio `ProgressBatcher`: batches by count or interval, in order, resent as one."""

    def __init__(
        self, client: AsyncLedgerClient, *, max_events: int = 100, interval: float = 1.0
    ) -> None:
        if not 1 <= max_events <= 1000:
            raise ValueError("max_events must be 1 to 1000")
        self.client = client
        self.max_events = max_events
        self.interval = interval
        self.refused: list[BatchResult] = []
        self.sent = 0
        self._pending: list[JsonObject] = []
        self._unsent: Call[BatchResults] | None = None
        self._sending = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    async def progress(self, job_id: str, progress: int | None = None, **fields: Any) -> None:
        """Queue a progress event of `job_id`; only the fields given change."""
        await self.add(job_id, "progress", progress=progress, **fields)

    async def add(self, job_id: str, type_: str, **fields: Any) -> None:
        """Queue any event (`{job_id, type, ...}`) in order with the others."""
        event = {"job_id": job_id, "type": type_}
        event.update({name: value for name, value in fields.items() if value is not None})
        self._pending.append(event)
        if len(self._pending) >= self.max_events:
            await self.flush()
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_later())

    async def flush(self) -> Results:
        """Send what is waiting now; the results of the events sent."""
        async with self._sending:
            results: Results = []
            if self._unsent is not None:
                results += await self._send(self._unsent)
            while self._pending:
                events = self._pending[: self.max_events]
                del self._pending[: self.max_events]
                results += await self._send(calls.batch(events))
            return results

    async def aclose(self) -> None:
        """Send what is waiting and stop the timer."""
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        await self.flush()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _send(self, call: Call[BatchResults]) -> Results:
        self._unsent = call
        try:
            results = self.client._saw((await self.client._run(call)).results)
        except Unavailable:
            raise  # sent again, with the same idempotency key, by the next flush
        except BaseException:
            self._unsent = None  # refused as a whole: sending it again would not help
            raise
        self._unsent = None
        self.sent += len(results)
        refused = [result for result in results if not result.ok]
        for result in refused:
            log.warning("the ledger refused an event of %s: %s", result.job_id, result.error)
        self.refused += refused
        return results

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.interval)
        try:
            await self.flush()
        except ClientError:
            log.warning("progress batch not sent; it goes with the next", exc_info=True)
