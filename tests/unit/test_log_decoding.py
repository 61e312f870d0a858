"""The projections' decoder gives the very events the library's mapper gives: no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.compressor import ZlibCompressor
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from ledger.domain import Job, LedgerEvent
from ledger.transcoder import StateTranscoder
from projections.reader import EventDecoder, Row

ACTOR, REQUEST = "tok-test", "req-test"


def lifecycle() -> list[Job.Event]:
    """A job's events through a failed attempt, a retry, success and deletion."""
    job = Job.create(
        tenant="acme", job_id="j-1", job_type="sync", name=None, parameters={"a": [1]},
        labels={"team": "x"}, total_records=None, max_attempts=2, actor=ACTOR,
        request_id=REQUEST,
    )  # fmt: skip
    job.start(actor=ACTOR, request_id=REQUEST)
    job.record_progress(progress=40, counters={"rows": 3}, actor=ACTOR, request_id=REQUEST)
    job.fail(error_message="boom", error_details={"code": 7}, actor=ACTOR, request_id=REQUEST)
    job.start(actor=ACTOR, request_id=REQUEST)
    job.succeed(records_created=4, result={"ok": True}, actor=ACTOR, request_id=REQUEST)
    job.delete(actor=ACTOR, request_id=REQUEST)
    events = job.collect_events()
    assert all(isinstance(e, Job.Event) for e in events)
    return events  # type: ignore[return-value]


def rows(mapper: Mapper[Any], events: list[Any]) -> list[Row]:
    stored = [mapper.to_stored_event(e) for e in events]
    return [
        (n, str(s.originator_id), s.originator_version, s.topic, s.state)
        for n, s in enumerate(stored, start=100)
    ]


def decoded_by_mapper(mapper: Mapper[Any], batch: list[Row]) -> list[tuple[type, dict[str, Any]]]:
    return [
        (type(e := mapper.to_domain_event(StoredEvent(o, v, t, s))), vars(e))
        for _, o, v, t, s in batch
    ]


def test_each_event_decodes_as_the_mapper_decodes_it() -> None:
    mapper: Mapper[Any] = Mapper(transcoder=StateTranscoder())
    events = lifecycle()
    batch = rows(mapper, events)
    decoded = EventDecoder(mapper).decode(batch)
    assert [p.position for p in decoded] == list(range(100, 100 + len(events)))
    assert [(type(p.event), vars(p.event)) for p in decoded] == decoded_by_mapper(mapper, batch)
    assert [vars(p.event) for p in decoded] == [vars(e) for e in events]


def test_a_compressed_log_goes_through_the_mapper() -> None:
    mapper: Mapper[Any] = Mapper(transcoder=StateTranscoder(), compressor=ZlibCompressor())
    batch = rows(mapper, lifecycle())
    decoded = EventDecoder(mapper).decode(batch)
    assert [(type(p.event), vars(p.event)) for p in decoded] == decoded_by_mapper(mapper, batch)


@dataclass(frozen=True, kw_only=True)
class Renamed(LedgerEvent):
    """An event whose class was upcast: stored at version 1, read at version 2."""

    class_version = 2
    title: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["title"] = state.pop("name")


def test_an_event_to_upcast_goes_through_the_mapper() -> None:
    mapper: Mapper[Any] = Mapper(transcoder=StateTranscoder())
    state = StateTranscoder().encode({"timestamp": datetime.now(UTC), "name": "a"})
    batch: list[Row] = [(1, "s-1", 1, get_topic(Renamed), state)]
    (decoded,) = EventDecoder(mapper).decode(batch)
    assert isinstance(decoded.event, Renamed)
    assert decoded.event.title == "a"
