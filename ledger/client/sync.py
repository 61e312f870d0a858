"""The blocking client: `LedgerClient`, its progress batcher and the `run` context manager."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self, TypeVar

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

T = TypeVar("T")
log = logging.getLogger("ledger.client")

USER_AGENT: Final = "job-ledger-client/1"
Results = list[BatchResult]


class LedgerClient:
    """A blocking client of the ledger's HTTP API.

    Every write carries its own Idempotency-Key, kept across retries; connection errors,
    429, 502, 503 and 504 are retried as `retry` says (honouring Retry-After). Reads wait
    for the client's own last write (`min_position`) unless `read_your_writes=False`.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        tenant: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        read_your_writes: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.tenant = tenant
        self.retry = retry or RetryPolicy()
        self.read_your_writes = read_your_writes
        self.position = 0
        """The highest log position this client's writes were answered with."""
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------

    def create_job(
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
        return self._run(
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

    def start(self, job_id: str, *, if_version: int | None = None) -> Recorded:
        """Record that the job started (again, after a failure, while attempts remain)."""
        return self._run(calls.record(job_id, "started", if_version))

    def progress(
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
        return self._run(
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

    def succeed(
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
        return self._run(
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

    def fail(
        self,
        job_id: str,
        error_message: str,
        *,
        error_details: JsonObject | None = None,
        if_version: int | None = None,
    ) -> Recorded:
        """Record that the running job failed, and why."""
        return self._run(
            calls.record(
                job_id,
                "failed",
                if_version,
                error_message=error_message,
                error_details=error_details,
            )
        )

    def cancel(
        self, job_id: str, reason: str | None = None, *, if_version: int | None = None
    ) -> Recorded:
        """Cancel a pending or running job."""
        return self._run(calls.record(job_id, "cancelled", if_version, reason=reason))

    def batch(self, events: list[JsonObject]) -> Results:
        """Post `{job_id, type, ...}` events in one request; one result per event, in order."""
        return self._saw(self._run(calls.batch(events)).results)

    def batcher(self, *, max_events: int = 100, interval: float = 1.0) -> ProgressBatcher:
        """A batcher that sends progress events in batches (by count or every `interval` s)."""
        return ProgressBatcher(self, max_events=max_events, interval=interval)

    @contextmanager
    def run(self, job_id: str, *, batcher: ProgressBatcher | None = None) -> Iterator[JobRun]:
        """Record `started`, then `succeeded` when the block ends, or `failed` with the
        exception's message when it raises (an interrupt records `cancelled`)."""
        self.start(job_id)
        run = JobRun(self, job_id, batcher)
        try:
            yield run
        except BaseException as error:
            if batcher is not None:
                self._quietly(batcher.flush)
            if isinstance(error, Exception):
                self._quietly(self.fail, job_id, **calls.failure_fields(error))
            else:
                self._quietly(self.cancel, job_id, f"interrupted: {type(error).__name__}")
            raise
        if batcher is not None:
            batcher.flush()
        self.succeed(job_id, **run.outcome)

    # -- reads ----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """One job with every detail."""
        return self._run(calls.get(job_id))

    def list(
        self,
        *,
        job_type: str | None = None,
        status: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[Job]:
        """Every job that matches, newest first, fetched a page at a time."""
        after: str | None = None
        while True:
            page = self._run(
                calls.page(
                    job_type=job_type,
                    status=status,
                    start_date=start_date,
                    end_date=end_date,
                    page_size=page_size,
                    after=after,
                )
            )
            yield from page.jobs
            if not page.page_info.has_next_page or page.page_info.end_cursor is None:
                return
            after = page.page_info.end_cursor

    def running(self) -> tuple[RunningJob, ...]:
        """The jobs running now, the most recently started first."""
        return tuple(self._run(calls.running()).jobs)

    def stats(
        self,
        group_by: str = "status,job_type",
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> Stats:
        """Counts and durations grouped by any of status, job_type, day, tenant."""
        return self._run(calls.stats(group_by, start_date, end_date))

    def events(
        self,
        *,
        after: int = 0,
        poll_interval: float = 1.0,
        page_size: int = 1000,
        stop: threading.Event | None = None,
    ) -> Iterator[FeedEvent]:
        """Tail the tenant's event feed: every event after position `after`, in log order,
        then each new one as it is appended, until `stop` is set.

        The feed is for auditor and admin tokens (others get `Unauthorized`); to resume,
        pass the `position` of the last event handled as `after`.
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            page = self._run(calls.feed(after, page_size))
            yield from page.events
            after = page.next
            if len(page.events) < page_size:
                stop.wait(poll_interval)

    def changes(
        self,
        *,
        after: int = 0,
        job_type: str | None = None,
        poll_interval: float = 1.0,
        stop: threading.Event | None = None,
    ) -> Iterator[JobChange]:
        """Watch jobs change, with any token: each job whose latest event is past `after`,
        in log order, until `stop` is set.

        This polls the job list, so it reports a job's state after its latest event:
        several events between two polls come as one change, and a deleted job is not
        reported. `events()` gives every event, to auditor and admin tokens.
        """
        seen = after
        stop = stop or threading.Event()
        while not stop.is_set():
            reached = self._reached()
            if reached > seen:
                # Jobs past `reached` changed while we read; they come with the next poll.
                changes = sorted(
                    (
                        JobChange(position=job.position, job=job)
                        for job in self.list(job_type=job_type)
                        if seen < job.position <= reached
                    ),
                    key=lambda change: change.position,
                )
                yield from changes
                seen = reached
            stop.wait(poll_interval)

    # -- transport ------------------------------------------------------------------------

    def _reached(self) -> int:
        """The log position the read models have reached."""
        response = self._send(
            calls.page(
                job_type=None, status=None, start_date=None, end_date=None, page_size=1, after=None
            )
        )
        return int(response.headers.get(calls.POSITION_HEADER, "0"))

    def _run(self, call: Call[T]) -> T:
        return call.decode(self._send(call))

    def _send(self, call: Call[Any]) -> httpx.Response:
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
                response = self._http.request(
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
            time.sleep(self.retry.delay(attempt, response))
        calls.raise_for_problem(response)
        if call.is_write and (position := response.headers.get(calls.POSITION_HEADER)):
            self.position = max(self.position, int(position))
        return response

    def _saw(self, results: Results) -> Results:
        """Remember the highest position a batch's events got, for read-your-writes."""
        self.position = max([self.position, *(r.position for r in results if r.position)])
        return results

    @staticmethod
    def _quietly(record: Any, *args: Any, **kwargs: Any) -> None:
        """Record an outcome without hiding the exception that is on its way out."""
        try:
            record(*args, **kwargs)
        except ClientError:
            log.warning("could not record the job's outcome", exc_info=True)


class JobRun:
    """The job a `run` block works on: report progress, and set what `succeeded` records."""

    def __init__(self, client: LedgerClient, job_id: str, batcher: ProgressBatcher | None) -> None:
        self.client = client
        self.job_id = job_id
        self.batcher = batcher
        self.outcome: JsonObject = {}

    def progress(self, progress: int | None = None, **fields: Any) -> None:
        """Record progress, through the batcher when the run has one."""
        if self.batcher is not None:
            self.batcher.progress(self.job_id, progress, **fields)
        else:
            self.client.progress(self.job_id, progress, **fields)

    def set_outcome(self, **fields: Any) -> None:
        """Fields of the `succeeded` event: records_processed, ..., result."""
        self.outcome.update(fields)


class ProgressBatcher:
    """Collects progress events and posts them to /api/v1/events/batch.

    A batch goes when `max_events` are waiting, or `interval` seconds after the first of
    them, or on `flush()` / leaving the `with` block. Batches go in the order their events
    came. A batch that could not be sent is sent again, with the same idempotency key,
    before the next one. Items the server refused are kept in `refused`.
    """

    def __init__(self, client: LedgerClient, *, max_events: int = 100, interval: float = 1.0):
        if not 1 <= max_events <= 1000:
            raise ValueError("max_events must be 1 to 1000")
        self.client = client
        self.max_events = max_events
        self.interval = interval
        self.refused: list[BatchResult] = []
        self.sent = 0
        self._pending: list[JsonObject] = []
        self._unsent: Call[BatchResults] | None = None
        self._state = threading.Lock()
        self._sending = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="ledger-batcher", daemon=True)
        self._thread.start()

    def progress(self, job_id: str, progress: int | None = None, **fields: Any) -> None:
        """Queue a progress event of `job_id`; only the fields given change."""
        self.add(job_id, "progress", progress=progress, **fields)

    def add(self, job_id: str, type_: str, **fields: Any) -> None:
        """Queue any event (`{job_id, type, ...}`) in order with the others."""
        event = {"job_id": job_id, "type": type_}
        event.update({name: value for name, value in fields.items() if value is not None})
        with self._state:
            self._pending.append(event)
            full = len(self._pending) >= self.max_events
        if full:
            self.flush()
        else:
            self._wake.set()

    def flush(self) -> Results:
        """Send what is waiting now; the results of the events sent."""
        with self._sending:
            results: Results = []
            if self._unsent is not None:
                results += self._send(self._unsent)
            while True:
                with self._state:
                    events = self._pending[: self.max_events]
                    del self._pending[: self.max_events]
                if not events:
                    return results
                results += self._send(calls.batch(events))

    def close(self) -> None:
        """Send what is waiting and stop the timer."""
        self._closed.set()
        self._wake.set()
        self._thread.join()
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: Call[BatchResults]) -> Results:
        self._unsent = call
        try:
            results = self.client._saw(self.client._run(call).results)
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

    def _tick(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._closed.wait(self.interval):
                return
            try:
                self.flush()
            except ClientError:
                log.warning("progress batch not sent; it goes with the next", exc_info=True)
