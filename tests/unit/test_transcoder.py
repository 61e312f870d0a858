"""Stored event state: msgspec JSON in the library's format, callers' JSON kept verbatim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import Job
from ledger.transcoder import EventMapper, StateTranscoder

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
moments = st.datetimes(timezones=st.just(UTC)) | st.datetimes(
    timezones=st.just(timezone(timedelta(hours=5, minutes=30)))
)


def library() -> JSONTranscoder:
    transcoder = JSONTranscoder()
    transcoder.register(DatetimeAsISO())
    return transcoder


@given(st.dictionaries(st.text(min_size=1), json_values | moments, max_size=8))
def test_state_round_trips(state: dict[str, Any]) -> None:
    assert StateTranscoder().decode(StateTranscoder().encode(state)) == state


@given(moments, st.dictionaries(st.text(), json_values, max_size=4))
def test_reads_what_the_library_stored_and_the_library_reads_ours(
    moment: datetime, parameters: dict[str, Any]
) -> None:
    state = {"timestamp": moment, "actor": "tok", "parameters": parameters, "total": 3}
    assert StateTranscoder().decode(library().encode(state)) == state
    assert library().decode(StateTranscoder().encode(state)) == state


@given(moments, st.dictionaries(st.text(), json_values, max_size=4))
def test_a_snapshots_state_keeps_its_datetimes(
    moment: datetime, parameters: dict[str, Any]
) -> None:
    state = {"timestamp": moment, "state": {"start_time": moment, "parameters": parameters}}
    assert StateTranscoder().decode(StateTranscoder().encode(state)) == state
    assert StateTranscoder().decode(library().encode(state)) == state


def test_caller_json_that_looks_like_a_tagged_value_comes_back_as_sent() -> None:
    # The library's decoder would turn the first into a datetime and fail on the second.
    parameters = {
        "a": {"_type_": "datetime_iso", "_data_": "2020-01-01T00:00:00"},
        "b": {"_type_": "no-such-type", "_data_": 1},
    }
    state = {"timestamp": datetime(2026, 1, 2, tzinfo=UTC), "parameters": parameters}
    decoded = StateTranscoder().decode(StateTranscoder().encode(state))
    assert decoded["parameters"] == parameters
    assert decoded["timestamp"] == datetime(2026, 1, 2, tzinfo=UTC)


@given(moments, st.dictionaries(st.text(), json_values, max_size=4), st.integers(0, 100))
def test_the_mappers_short_cut_stores_what_the_general_path_stores(
    moment: datetime, parameters: dict[str, Any], progress: int
) -> None:
    job = Job.create(
        tenant="t", job_id="j", job_type="x", parameters=parameters, actor="a", request_id="r"
    )
    job.start(actor="a", request_id="r")
    job.record_progress(progress=progress, counters={"n": progress}, actor="a", request_id="r")
    job.succeed(result=parameters, actor="a", request_id="r")
    ours, general = EventMapper(transcoder=StateTranscoder()), Mapper(transcoder=StateTranscoder())
    events = [*job.collect_events(), Job.Snapshot.take(job)]
    for event in events:
        object.__setattr__(event, "timestamp", moment)
        stored = ours.to_stored_event(event)
        assert stored == general.to_stored_event(event)
        assert ours.to_domain_event(stored) == event
        assert Mapper(transcoder=library()).to_domain_event(stored) == event
