"""`ledger verify` as a real process: it passes on an honest ledger, and names the first
broken event when a stored event is edited or deleted with SQL, or a read-model row drifts."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import threading

import psycopg
from psycopg import sql

from ledger.application import JobLedger
from ledger.commands import Context, NewJob, RecordProgress, Start, Succeed
from ledger.settings import Settings
from ledger.verify import verify
from projections.check import row_checks
from projections.pump import catch_up
from projections.runner import ProjectionsRunner
from tests.audit.conftest import Commands
from tests.e2e.processes import ledger_command
from tests.property.workload import write_backlog

CTX = Context(actor="tok-audit", request_id="req-audit")


def lifecycle(ledger: JobLedger, job_id: str = "a") -> list[int]:
    """Create, start, progress and succeed a job of acme; each event's position."""
    return [
        ledger.create_job("acme", NewJob(job_id=job_id, job_type="x"), CTX).position,
        ledger.record("acme", job_id, Start(), CTX).position,
        ledger.record("acme", job_id, RecordProgress(progress=40), CTX).position,
        ledger.record("acme", job_id, Succeed(), CTX).position,
    ]


def execute(settings: Settings, statement: str, *params: object) -> int:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.database_schema))
        )
        return conn.execute(statement.encode(), params).rowcount


def test_an_honest_ledger_verifies_and_says_what_was_checked(
    settings: Settings, ledger: JobLedger, cli: Commands
) -> None:
    head = write_backlog(ledger, jobs=40)
    catch_up(settings)

    done = cli.run("verify")

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(rf"chain: {head} events in 40 streams, every hash matches", out), out
    for model in ("jobs", "running_jobs", "job_stats", "job_status_intervals"):
        assert re.search(rf"{model}: \d+ .* equal a replay up to position {head}", out), out
    assert re.search(rf"ok: {head} events of 40 jobs verified in [\d.]+ s \([\d,]+ events/s\)", out)
    assert "replaying:" in out  # plain progress lines, since stdout is not a terminal


def test_an_event_edited_with_sql_is_named(
    settings: Settings, ledger: JobLedger, cli: Commands
) -> None:
    lifecycle(ledger, "before")
    positions = lifecycle(ledger, "a")
    lifecycle(ledger, "after")
    catch_up(settings)
    edited = execute(
        settings,
        "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        "'40', '41'), 'UTF8') WHERE originator_id = 'acme/a' AND originator_version = 3",
    )
    assert edited == 1

    done = cli.run("verify")

    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"BROKEN: job acme/a version 3 position {positions[2]}: the stored hash does not match "
        "the event" in done.stdout
    ), done.stdout


def test_a_deleted_event_is_named(settings: Settings, ledger: JobLedger, cli: Commands) -> None:
    lifecycle(ledger, "before")
    positions = lifecycle(ledger, "a")
    catch_up(settings)
    assert (
        execute(
            settings,
            "DELETE FROM ledger_events WHERE originator_id = 'acme/a' AND originator_version = 2",
        )
        == 1
    )

    done = cli.run("verify")

    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"BROKEN: job acme/a version 2 position {positions[1]}: the event is missing from the log"
        in done.stdout
    ), done.stdout


def test_a_deleted_last_event_is_caught_by_its_orphaned_hash_and_the_rows(
    settings: Settings, ledger: JobLedger
) -> None:
    positions = lifecycle(ledger, "a")
    lifecycle(ledger, "after")
    catch_up(settings)
    execute(
        settings,
        "DELETE FROM ledger_events WHERE originator_id = 'acme/a' AND originator_version = 4",
    )

    report = verify(settings, ledger.mapper, row_checks())

    found = {str(p) for p in report.problems}
    assert (
        f"log position {positions[3]}: a hash is stored for this position but its "
        "event is gone" in found
    )
    assert any(p.startswith("job acme/a version 3") and "jobs row: status" in p for p in found)


def test_a_read_model_row_that_differs_from_a_replay_is_named(
    settings: Settings, ledger: JobLedger, cli: Commands
) -> None:
    positions = lifecycle(ledger, "a")
    catch_up(settings)
    execute(settings, "UPDATE jobs SET records_processed = 7 WHERE id = 'a'")

    done = cli.run("verify")

    assert done.returncode == 1
    assert (
        f"BROKEN: job acme/a version 4 position {positions[3]}: jobs row: records_processed is 7, "
        "the replay gives 0" in done.stdout
    ), done.stdout


def test_a_job_body_that_differs_from_its_row_is_named(
    settings: Settings, ledger: JobLedger
) -> None:
    positions = lifecycle(ledger, "a")
    lifecycle(ledger, "b")
    catch_up(settings)
    assert execute(settings, "UPDATE jobs SET body = NULL WHERE id = 'b'") == 1  # not yet written
    assert not verify(settings, ledger.mapper, row_checks()).problems
    execute(
        settings,
        "UPDATE jobs SET body = convert_to(replace(convert_from(body, 'UTF8'), "
        "'\"progress\":100', '\"progress\":99'), 'UTF8') WHERE id = 'a'",
    )

    report = verify(settings, ledger.mapper, row_checks())

    assert [str(p) for p in report.problems] == [
        f"job acme/a version 4 position {positions[3]}: jobs body: not the row's job"
    ]


def test_a_running_body_that_differs_from_its_row_is_named(
    settings: Settings, ledger: JobLedger
) -> None:
    def running(job_id: str) -> int:
        """Create and start a job of acme, at 40%; its last event's position."""
        ledger.create_job("acme", NewJob(job_id=job_id, job_type="x"), CTX)
        ledger.record("acme", job_id, Start(), CTX)
        return ledger.record("acme", job_id, RecordProgress(progress=40), CTX).position

    running("a")
    b = running("b")
    catch_up(settings)
    # Not yet written, or written for a version before the row's: written out when read.
    assert execute(settings, "UPDATE running_jobs SET body = NULL WHERE id = 'a'") == 1
    assert execute(settings, "UPDATE running_jobs SET body_version = 2 WHERE id = 'b'") == 1
    assert not verify(settings, ledger.mapper, row_checks()).problems
    execute(
        settings,
        "UPDATE running_jobs SET body = convert_to(replace(convert_from(body, 'UTF8'), "
        "'\"progress\":40', '\"progress\":41'), 'UTF8'), body_version = version"
        " WHERE id = 'b'",
    )

    report = verify(settings, ledger.mapper, row_checks())

    assert [str(p) for p in report.problems] == [
        f"job acme/b version 3 position {b}: running_jobs body: not the row's job"
    ]


def test_every_read_model_drift_is_found(settings: Settings, ledger: JobLedger) -> None:
    lifecycle(ledger, "a")
    ledger.create_job("acme", NewJob(job_id="b", job_type="x"), CTX)
    catch_up(settings)
    execute(settings, "UPDATE running_jobs SET progress = 5 WHERE id = 'b'")
    execute(settings, "UPDATE job_stats SET count = count + 1 WHERE status = 'completed'")
    execute(
        settings, "UPDATE job_status_intervals SET status = 'failed' WHERE status = 'completed'"
    )
    execute(
        settings,
        "INSERT INTO deleted_jobs VALUES ('acme', 'ghost', 2, 99, now())",
    )

    report = verify(settings, ledger.mapper, row_checks())

    found = "\n".join(str(p) for p in report.problems)
    assert "job acme/b version 1" in found and "running_jobs row: progress is 5" in found
    assert "job_stats bucket acme/x/completed/" in found
    assert "job_status_intervals interval: status is 'failed'" in found
    assert "job acme/ghost: a deleted_jobs row has no events behind it" in found
    assert len(report.problems) == 4


def test_verify_reads_one_snapshot_while_writes_and_projections_go_on(
    settings: Settings, ledger: JobLedger
) -> None:
    write_backlog(ledger, jobs=30)
    stop = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            lifecycle(ledger, f"live-{n}")
            n += 1

    writer = threading.Thread(target=keep_writing)
    with ProjectionsRunner(settings, batch_size=5):
        writer.start()
        try:
            reports = [verify(settings, ledger.mapper, row_checks()) for _ in range(3)]
        finally:
            stop.set()
            writer.join()

    assert [r.problems for r in reports] == [[], [], []]
    assert reports[0].events < reports[-1].events


def test_on_a_terminal_verify_and_rebuild_draw_progress_bars_with_a_rate(
    settings: Settings, ledger: JobLedger, cli: Commands
) -> None:
    write_backlog(ledger, jobs=20)
    catch_up(settings)

    for args in (["verify"], ["projections", "rebuild", "jobs"]):
        status, out = on_a_terminal(cli, *args)

        assert status == 0, out
        assert "━" in out and "events/s" in out, out  # rich's bar, and the rate beside it


def on_a_terminal(cli: Commands, *args: str) -> tuple[int, str]:
    """Run `ledger` with its output on a pseudo-terminal; its status and what it wrote."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [*ledger_command(), *args], env={**cli.env, "COLUMNS": "100"}, cwd=cli.cwd,
        stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return process.wait(30), b"".join(chunks).decode(errors="replace")
