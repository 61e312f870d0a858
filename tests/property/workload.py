"""A seeded mix of job lifecycles (retries, failures, cancels, deletes) for backlogs."""

from __future__ import annotations

import contextlib
import random

from ledger.application import JobLedger
from ledger.commands import (
    Cancel,
    Context,
    Delete,
    Fail,
    JobCommand,
    NewJob,
    RecordProgress,
    Start,
    Succeed,
)
from ledger.errors import LedgerError

CTX = Context(actor="tok-test", request_id="req-test")


def lifecycle(rng: random.Random) -> list[JobCommand]:
    """One job's commands: some finish, some fail and retry, some are cancelled or deleted."""
    commands: list[JobCommand] = []
    if rng.random() < 0.05:
        return commands  # left pending
    for attempt in range(3):
        if rng.random() < 0.1:
            commands.append(Cancel(reason="not needed"))
            break
        commands.append(Start())
        for step in range(rng.randrange(4)):
            commands.append(
                RecordProgress(progress=20 * (step + 1), current_step=f"step-{step}",
                               records_processed=10 * step)
            )
        roll = rng.random()
        if roll < 0.5:
            commands.append(Succeed(records_created=rng.randrange(10), result={"ok": True}))
            break
        if roll < 0.8:
            commands.append(Fail(error_message=f"boom {attempt}", error_details={"n": attempt}))
            continue
        if roll < 0.9:
            commands.append(Cancel())
        break  # else: left running
    if rng.random() < 0.15:
        commands.append(Delete())
    return commands


def write_backlog(
    ledger: JobLedger, *, jobs: int, seed: int = 7, tenants: tuple[str, ...] = ("acme", "globex")
) -> int:
    """Create `jobs` jobs and drive each through a lifecycle; the last position written."""
    rng = random.Random(seed)
    last = 0
    for n in range(jobs):
        tenant = tenants[n % len(tenants)]
        job_id = f"job-{seed}-{n}"
        new = NewJob(job_id=job_id, job_type=rng.choice(["sync", "export", "import"]),
                     max_attempts=rng.choice([1, 2, 3]), total_records=100)
        last = ledger.create_job(tenant, new, CTX).position
        for command in lifecycle(rng):
            # A refused command (a retry with no attempts left) writes nothing.
            with contextlib.suppress(LedgerError):
                last = ledger.record(tenant, job_id, command, CTX).position
    return last
