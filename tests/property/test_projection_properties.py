"""Random command sequences through JobLedger, projected in random batch sizes: every
read model equals what a fresh replay of the jobs' events gives."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ledger.application import JobLedger
from ledger.commands import (
    Cancel,
    Delete,
    Fail,
    JobCommand,
    NewJob,
    RecordProgress,
    Start,
    Succeed,
)
from ledger.domain import Job
from ledger.errors import LedgerError
from ledger.settings import Settings
from projections.pump import Pump
from tests.property.replay import assert_projections_match_replay
from tests.property.workload import CTX

JOBS = 3
T0 = datetime(2026, 3, 1, 23, 59, 58, tzinfo=UTC)  # runs cross midnight: two day buckets
counter = itertools.count()

progress = st.builds(
    RecordProgress,
    progress=st.none() | st.integers(0, 100),
    current_step=st.none() | st.sampled_from(["read", "write"]),
    records_processed=st.none() | st.integers(0, 10**6),
    counters=st.none() | st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9)),
)
succeed = st.builds(
    Succeed, records_created=st.none() | st.integers(0, 99),
    result=st.none() | st.just({"rows": 1.5}),
)  # fmt: skip
fail = st.builds(
    Fail, error_message=st.sampled_from(["boom", "timeout"]),
    error_details=st.none() | st.just({"code": 7}),
)  # fmt: skip
any_command: st.SearchStrategy[JobCommand] = st.one_of(
    st.just(Start()), progress, succeed, fail, st.just(Cancel()), st.just(Delete())
)


@st.composite
def lifecycle(draw: st.DrawFn) -> list[JobCommand]:
    """A job's commands: attempts that progress and end (failures retry), maybe a
    delete, and maybe one stray command anywhere (which the ledger may refuse)."""
    commands: list[JobCommand] = []
    for _ in range(draw(st.integers(0, 3))):  # more starts than attempts get refused
        commands.append(Start())
        commands += draw(st.lists(progress, max_size=3))
        end = draw(st.sampled_from(["succeed", "fail", "fail", "cancel", "none"]))
        if end == "fail":
            commands.append(draw(fail))
            continue
        if end != "none":
            commands.append(draw(succeed) if end == "succeed" else Cancel(reason="stop"))
        break
    if draw(st.integers(0, 3)) == 0:
        commands.append(Delete())
    if draw(st.booleans()):
        commands.insert(draw(st.integers(0, len(commands))), draw(any_command))
    return commands


Step = tuple[int, JobCommand, int, int]
"""(job, command, ms the clock moves first, then project in batches of this size or 0)."""


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[int], list[str], list[Step]]:
    """Each job's max_attempts and job_type, and their lifecycles interleaved."""
    plans = [draw(lifecycle()) for _ in range(JOBS)]
    order = draw(st.permutations([n for n, plan in enumerate(plans) for _ in plan]))
    remaining = [iter(plan) for plan in plans]
    steps = [
        (n, next(remaining[n]), draw(st.integers(1, 5000)), draw(st.sampled_from([0, 0, 1, 4])))
        for n in order
    ]
    max_attempts = draw(st.lists(st.integers(1, 3), min_size=JOBS, max_size=JOBS))
    job_types = draw(st.lists(st.sampled_from(["sync", "export"]), min_size=JOBS, max_size=JOBS))
    return max_attempts, job_types, steps


@pytest.fixture
def pump(settings: Settings) -> Iterator[Pump]:
    pump = Pump(settings)
    yield pump
    pump.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The time the domain stamps on new events; a test moves it (the clock is an outside edge)."""
    now = [T0]
    monkeypatch.setattr(Job.Event, "create_timestamp", staticmethod(lambda: now[0]))
    return now


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=scenario())
def test_read_models_equal_replays_of_random_commands(
    settings: Settings,
    ledger: JobLedger,
    pump: Pump,
    clock: list[datetime],
    scenario: tuple[list[int], list[str], list[Step]],
) -> None:
    tenant = f"t{next(counter)}"  # each example writes jobs of its own into the one schema
    clock[0] = T0
    max_attempts, job_types, steps = scenario
    for n in range(JOBS):
        new = NewJob(job_id=f"j{n}", job_type=job_types[n], max_attempts=max_attempts[n])
        ledger.create_job(tenant, new, CTX)
    for n, command, ms, batch_size in steps:
        clock[0] += timedelta(milliseconds=ms)
        head = ledger.recorder.max_notification_id()
        try:
            ledger.record(tenant, f"j{n}", command, CTX)
        except LedgerError:
            assert ledger.recorder.max_notification_id() == head  # refused: nothing written
        if batch_size:
            pump.batch_size = batch_size
            pump.catch_up()
    pump.batch_size = 5
    pump.catch_up()
    assert_projections_match_replay(settings, ledger)
