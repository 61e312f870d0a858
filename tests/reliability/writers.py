"""Client threads that drive job lifecycles over HTTP and keep every answer they got."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.reliability.harness import bearer

Step = tuple[str, dict[str, Any]]


def lifecycle(job_id: str) -> list[Step]:
    """A job's writes, each a (path, body) POST: created, started, progress, succeeded."""
    events = f"/api/v1/jobs/{job_id}/events"
    return [
        ("/api/v1/jobs", {"id": job_id, "job_type": "reliability", "total_records": 10}),
        (events, {"type": "started"}),
        (events, {"type": "progress", "progress": 50, "records_processed": 5}),
        (events, {"type": "succeeded", "records_created": 10}),
    ]


@dataclass(frozen=True, slots=True)
class Acked:
    """A write that got a 2xx answer: the job, the version and position it answered."""

    job_id: str
    version: int
    position: int


@dataclass(frozen=True, slots=True)
class Pending:
    """A write whose answer never came (the connection died): to retry with its key."""

    path: str
    body: dict[str, Any]
    key: str


@dataclass
class Writers:
    """`count` client threads writing job lifecycles with an Idempotency-Key per write.

    `retry_unavailable`: on a 503, wait Retry-After and send the same write again with
    the same key (a well-behaved client); otherwise a failed connection ends the thread.
    """

    url: str
    token: str
    count: int
    prefix: str
    retry_unavailable: bool = False
    acked: list[Acked] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    statuses: list[tuple[int, float, str | None]] = field(default_factory=list)
    """(status, seconds taken, Retry-After) of every answer."""
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for number in range(self.count):
            thread = threading.Thread(target=self._run, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float = 60) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "a writer hung"

    def _run(self, number: int) -> None:
        with httpx.Client(base_url=self.url, headers=bearer(self.token), timeout=20) as http:
            job_number = 0
            while not self.stop.is_set():
                job_id = f"{self.prefix}-{number}-{job_number}"
                for index, (path, body) in enumerate(lifecycle(job_id)):
                    if not self._write(http, Pending(path, body, f"{job_id}/{index}")):
                        return
                job_number += 1

    def _write(self, http: httpx.Client, write: Pending) -> bool:
        while True:
            began = time.monotonic()
            try:
                answer = http.post(
                    write.path, json=write.body, headers={"Idempotency-Key": write.key}
                )
            except httpx.TransportError:
                if self.retry_unavailable and not self.stop.is_set():
                    time.sleep(0.2)
                    continue
                self.pending.append(write)
                return False
            took = time.monotonic() - began
            self.statuses.append((answer.status_code, took, answer.headers.get("retry-after")))
            if answer.is_success:
                body = answer.json()
                job_id = body.get("id") or write.body["id"]
                self.acked.append(Acked(job_id, body["version"], body["position"]))
                return True
            if not answer.headers.get("content-type", "").startswith("application/problem+json"):
                self.unexpected.append(f"{write.path} {answer.status_code} is no problem+json")
            if answer.status_code == 503 and self.retry_unavailable:
                if self.stop.is_set():  # it may have committed: left for a retry
                    self.pending.append(write)
                    return False
                time.sleep(float(answer.headers.get("retry-after", "1")) / 4)
                continue
            self.unexpected.append(f"{write.path} {answer.status_code} {answer.text[:300]}")
            return False
