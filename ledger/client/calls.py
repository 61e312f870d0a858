"""What each client method sends and how its answer is read, shared by the sync and async clients.

A `Call` is one HTTP request described as data: its method, path, query, JSON body, and
the decoder of its answer. A write carries an `Idempotency-Key` made once per call, so
every retry of it is the same request to the server, which replays its first answer
instead of appending twice.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, Generic, TypeVar

import httpx
import msgspec

from ledger.client.models import (
    ERRORS_BY_STATUS,
    BatchResults,
    EventPage,
    Job,
    JsonObject,
    Page,
    ProblemError,
    Recorded,
    RunningJobs,
    Stats,
)

T = TypeVar("T")

JOBS: Final = "/api/v1/jobs"
BATCH: Final = "/api/v1/events/batch"
POSITION_HEADER: Final = "X-Ledger-Position"
RETRIED_STATUSES: Final = frozenset({429, 502, 503, 504})
RETRIED_ERRORS: Final = (httpx.TransportError,)
"""Connection refused or reset, an answer lost or cut short, timeouts: all safe to repeat,
since writes carry an idempotency key."""

_encode: Final = msgspec.json.Encoder().encode
_problem: Final = msgspec.json.Decoder(JsonObject)

Params = Mapping[str, str | int]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the decoder of its 2xx answer."""

    method: str
    path: str
    decode: Callable[[httpx.Response], T]
    params: Params = field(default_factory=dict)
    body: JsonObject | None = None
    idempotency_key: str | None = None
    if_version: int | None = None

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        if self.if_version is not None:
            headers["If-Match"] = f'"{self.if_version}"'
        return headers

    def content(self) -> bytes | None:
        return None if self.body is None else _encode(self.body)

    @property
    def is_write(self) -> bool:
        return self.idempotency_key is not None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry on connection errors, 429, 502, 503 and 504.

    Waits grow as `backoff * 2**n` (with jitter) up to `max_backoff`; a `Retry-After`
    answer is honoured up to `max_retry_after` seconds.
    """

    attempts: int = 5
    backoff: float = 0.1
    max_backoff: float = 5.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempts count from 1)."""
        if response is not None:
            after = retry_after(response)
            if after is not None:
                return min(after, self.max_retry_after)
        wait = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return wait * (0.5 + random.random() / 2)


def retry_after(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds (delta-seconds or an HTTP date), if any."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def should_retry(response: httpx.Response) -> bool:
    return response.status_code in RETRIED_STATUSES


def new_key() -> str:
    return f"client-{uuid.uuid4().hex}"


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the `ProblemError` subclass that fits a 4xx or 5xx answer."""
    if response.status_code < 400:
        return
    try:
        problem = _problem.decode(response.content)
    except msgspec.DecodeError:
        problem = {"title": response.reason_phrase, "detail": response.text[:500]}
    error = ERRORS_BY_STATUS.get(response.status_code, ProblemError)
    raise error(response.status_code, problem)


def decoder(type_: type[T]) -> Callable[[httpx.Response], T]:
    decode = msgspec.json.Decoder(type_).decode

    def read(response: httpx.Response) -> T:
        return decode(response.content)

    return read


def no_content(response: httpx.Response) -> None:
    return None


read_job: Final = decoder(Job)
read_page: Final = decoder(Page)
read_recorded: Final = decoder(Recorded)
read_running: Final = decoder(RunningJobs)
read_stats: Final = decoder(Stats)
read_batch: Final = decoder(BatchResults)
read_events: Final = decoder(EventPage)


def _set(**fields: Any) -> JsonObject:
    """The fields that were given (None means "not sent")."""
    return {name: value for name, value in fields.items() if value is not None}


def create_job(
    job_type: str,
    *,
    id: str | None = None,
    name: str | None = None,
    parameters: JsonObject | None = None,
    labels: Mapping[str, str] | None = None,
    total_records: int | None = None,
    max_attempts: int | None = None,
    tenant: str | None = None,
) -> Call[Job]:
    body = _set(
        id=id,
        job_type=job_type,
        name=name,
        parameters=parameters,
        labels=dict(labels) if labels is not None else None,
        total_records=total_records,
        max_attempts=max_attempts,
        tenant=tenant,
    )
    return Call("POST", f"{JOBS}", read_job, body=body, idempotency_key=new_key())


def record(job_id: str, type_: str, if_version: int | None = None, **fields: Any) -> Call[Recorded]:
    """`POST /api/v1/jobs/{id}/events` with an event of `type_`."""
    return Call(
        "POST",
        f"{JOBS}/{job_id}/events",
        read_recorded,
        body={"type": type_, **_set(**fields)},
        idempotency_key=new_key(),
        if_version=if_version,
    )


def cancel(job_id: str, if_version: int | None = None) -> Call[None]:
    return Call(
        "DELETE",
        f"{JOBS}/{job_id}",
        no_content,
        idempotency_key=new_key(),
        if_version=if_version,
    )


def batch(events: list[JsonObject]) -> Call[BatchResults]:
    return Call("POST", BATCH, read_batch, body={"events": events}, idempotency_key=new_key())


def get(job_id: str) -> Call[Job]:
    return Call("GET", f"{JOBS}/{job_id}", read_job)


def page(
    *,
    job_type: str | None,
    status: str | None,
    start_date: datetime | None,
    end_date: datetime | None,
    page_size: int,
    after: str | None,
) -> Call[Page]:
    params: dict[str, str | int] = _set(
        job_type=job_type,
        status=status,
        start_date=_iso(start_date),
        end_date=_iso(end_date),
        after=after,
    )
    params["first"] = page_size
    return Call("GET", JOBS, read_page, params=params)


def feed(after: int, limit: int) -> Call[EventPage]:
    """A page of the tenant's event feed after position `after`."""
    return Call("GET", "/api/v1/events", read_events, params={"after": after, "limit": limit})


def running() -> Call[RunningJobs]:
    return Call("GET", f"{JOBS}/running", read_running)


def stats(group_by: str, start_date: datetime | None, end_date: datetime | None) -> Call[Stats]:
    params = _set(group_by=group_by, start_date=_iso(start_date), end_date=_iso(end_date))
    return Call("GET", "/api/v1/stats", read_stats, params=params)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def failure_fields(error: BaseException) -> JsonObject:
    """The `failed` event for an exception: its message, and its type as detail."""
    message = str(error) or type(error).__name__
    return {
        "error_message": message[:4096],
        "error_details": {"exception": f"{type(error).__module__}.{type(error).__qualname__}"},
    }
