"""What the event store itself holds for a job: the truth a client test checks against."""

from __future__ import annotations

from ledger.application import JobLedger
from ledger.domain import stream_id


def event_names(ledger: JobLedger, job_id: str, tenant: str = "acme") -> list[str]:
    """The class names of the job's stored events, in order (`Created`, `Started`, ...)."""
    stored = ledger.recorder.select_events(stream_id(tenant, job_id))
    return [event.topic.rsplit(".", 1)[-1] for event in stored]
