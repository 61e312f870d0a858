"""The auditors' commands: `ledger verify`, `ledger replay`, and `ledger projections
status` and `rebuild`. `ledger.cli` adds them to its parser."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, TextIO

from ledger.domain import SEPARATOR, Job
from ledger.errors import LedgerError
from ledger.progress import progress, rate

if TYPE_CHECKING:
    from ledger.history import Step
    from ledger.settings import Settings

EXIT_BROKEN: Final = 1


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`ledger verify` and `ledger replay`."""
    verify = commands.add_parser(
        "verify",
        help="check every event's hash chain and every read-model row against a replay",
        description="Replays every stream, checks each event's hash against event_hashes, "
        "and compares every read-model row with a fresh replay, in one snapshot. Exits 0 "
        "when everything matches, 1 naming the first broken event.",
    )
    verify.set_defaults(command=_verify)
    replay = commands.add_parser("replay", help="print a job's timeline, replayed from its events")
    replay.add_argument("job_id", metavar="JOB_ID", help="the job's id, or TENANT/JOB_ID")
    replay.add_argument("--tenant", help="the job's tenant (unless JOB_ID names it)")
    replay.add_argument(
        "--as-of",
        type=_moment,
        help="stop after this ISO 8601 time, its whole millisecond (without an offset: UTC)",
    )
    replay.set_defaults(command=_replay)


def add_projection_commands(
    projection_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """`ledger projections status` and `ledger projections rebuild [NAME]`."""
    status = projection_commands.add_parser(
        "status", help="each projection's position, the head of the log, and the lag"
    )
    status.set_defaults(command=_status)
    rebuild = projection_commands.add_parser(
        "rebuild",
        help="rebuild a read model from the log beside the live one and swap it in",
        description="Projects the whole log into new tables while the live ones keep "
        "serving, then swaps them in when caught up. Without NAME, every projection.",
    )
    rebuild.add_argument("name", metavar="NAME", nargs="?", help="one projection (default: all)")
    rebuild.set_defaults(command=_rebuild)


# -- commands ---------------------------------------------------------------------


def _verify(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from ledger.application import JobLedger
    from ledger.persistence import persistence_env
    from ledger.server import describe_database, open_database
    from ledger.verify import verify
    from projections.check import row_checks

    ready = open_database(settings)
    print(f"verifying {describe_database(settings)}", file=out, flush=True)
    app = JobLedger(env=persistence_env(ready))
    try:
        with progress("replaying", out) as update:
            report = verify(ready, app.mapper, row_checks(), update)
    finally:
        app.close()
    for line in report.lines:
        print(f"  {line}", file=out)
    if report.first is not None:
        more = "+" if report.more_problems else ""
        print(f"BROKEN: {report.first}", file=out)
        print(f"{len(report.problems)}{more} problems found; the first is shown", file=out)
        return EXIT_BROKEN
    print(
        f"ok: {report.events} events of {report.streams} jobs verified in "
        f"{report.seconds:.2f} s ({rate(report.events, report.seconds)})",
        file=out,
    )
    return 0


def _status(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from ledger.server import open_database
    from projections.status import projection_status

    rows = [
        (s.name, str(s.position), str(s.head), str(s.lag_events), f"{s.lag_seconds:.1f}")
        for s in projection_status(open_database(settings))
    ]
    out.write(table(("PROJECTION", "POSITION", "HEAD", "LAG_EVENTS", "LAG_SECONDS"), rows))
    return 0


def _rebuild(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from ledger.server import open_database
    from projections.rebuild import projection_names, rebuild_models

    ready = open_database(settings)
    names = [args.name] if args.name else projection_names(ready)
    # One pass over the log for all of them: each event is read and decoded once.
    with progress(f"rebuilding {', '.join(names)}", out) as update:
        rebuilt = rebuild_models(ready, names, progress=update)
    for done in rebuilt:
        print(
            f"rebuilt {done.name}: {done.events} events in {done.seconds:.2f} s "
            f"({rate(done.events, done.seconds)}), swapped in at position {done.position}",
            file=out,
            flush=True,
        )
    return 0


def _replay(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from ledger.application import JobLedger
    from ledger.history import History
    from ledger.persistence import persistence_env
    from ledger.server import open_database

    tenant, job_id = _job_key(args.job_id, args.tenant)
    app = JobLedger(env=persistence_env(open_database(settings)))
    try:
        steps = History(app).timeline(tenant, job_id, args.as_of)
    finally:
        app.close()
    out.write(timeline_table(steps))
    last = steps[-1].job
    when = f" as of {_iso(args.as_of)}" if args.as_of else ""
    print(
        f"{tenant}/{job_id}{when}: {last.status.value}, version {last.version}, "
        f"progress {last.progress}, attempt {last.attempt}/{last.max_attempts}",
        file=out,
    )
    return 0


# -- output -----------------------------------------------------------------------

TIMELINE_COLUMNS: Final = (
    "VERSION", "POSITION", "OCCURRED_AT", "EVENT", "ACTOR", "STATUS", "PROGRESS", "DETAIL",
)  # fmt: skip


def timeline_table(steps: Sequence[Step]) -> str:
    """One row per event: when, what, who, and the job's status and progress after it."""
    rows = [
        (
            str(step.event.originator_version),
            str(step.position),
            _iso(step.event.timestamp),
            type(step.event).__name__.lower(),
            step.event.actor,
            step.job.status.value,
            str(step.job.progress),
            _detail(step.event),
        )
        for step in steps
    ]
    return table(TIMELINE_COLUMNS, rows)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under a header, two spaces apart."""
    lines = [list(header), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in lines
    )


def _detail(event: Job.Event) -> str:
    match event:
        case Job.Created():
            return f"type={event.job_type}"
        case Job.Started():
            return f"attempt={event.attempt}"
        case Job.Progressed():
            parts = [f"progress={event.progress}"] if event.progress is not None else []
            if event.current_step is not None:
                parts.append(f"step={event.current_step}")
            if event.records_processed is not None:
                parts.append(f"records={event.records_processed}")
            return " ".join(parts)
        case Job.Failed():
            return f"error={event.error_message}"
        case Job.Cancelled():
            return f"reason={event.reason}" if event.reason else ""
    return ""


def _iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _job_key(raw: str, tenant: str | None) -> tuple[str, str]:
    if SEPARATOR in raw:
        named, _, job_id = raw.partition(SEPARATOR)
        if tenant not in (None, named):
            raise LedgerError(f"JOB_ID names tenant {named} but --tenant is {tenant}")
        return named, job_id
    if tenant is None:
        raise LedgerError("name the job's tenant: --tenant T, or TENANT/JOB_ID")
    return tenant, raw


def _moment(raw: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {raw!r}") from None
    from ledger.history import to_end_of_millisecond

    utc = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return to_end_of_millisecond(utc)
