"""The projections' folds against the domain's own: no database."""

from __future__ import annotations

from msgspec.structs import astuple

from ledger.domain import Job, stream_id
from projections.job_fold import created_row
from projections.rows import job_row
from projections.tracking import ByClass, EventBatch, Positioned, StreamKeys, stream_keys

WHO = {"actor": "tok-test", "request_id": "req-test"}


def created() -> Job.Created:
    job = Job.create(
        tenant="acme", job_id="j-1", job_type="sync", name="nightly", parameters={"a": [1]},
        labels={"team": "x"}, total_records=10, max_attempts=2, **WHO,
    )  # fmt: skip
    (event,) = job.collect_events()
    assert isinstance(event, Job.Created)
    return event


def test_created_row_is_the_row_of_the_job_the_library_builds_from_the_event() -> None:
    event = created()
    by_library = event.mutate(None)
    assert isinstance(by_library, Job)
    assert created_row(event, 7) == list(astuple(job_row(by_library, 7)))


def test_a_dispatch_table_finds_what_singledispatch_finds() -> None:
    from projections.running import apply

    table = ByClass(apply.dispatch)
    for cls in (Job.Created, Job.Started, Job.Progressed, Job.Deleted, Job.Event):
        assert table[cls] is apply.dispatch(cls)


def test_stream_keys_name_each_job_of_a_batch_once() -> None:
    event = created()
    other = object()  # not a job's event: no key
    batch = EventBatch([Positioned(event, 1), Positioned(other, 2), Positioned(event, 3)])
    keys = stream_keys(batch)
    assert keys == StreamKeys({stream_id("acme", "j-1")}, ["acme"], ["j-1"])
    assert stream_keys(batch) is keys  # worked out once per batch
    assert stream_keys(list(batch)) == keys


def test_the_collector_pauses_for_a_batch_and_resumes_only_if_it_was_running() -> None:
    import gc

    from projections.collector import collector_paused

    assert gc.isenabled()
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # disabled by someone else: left so
    finally:
        gc.enable()
