"""Every appended event gets a hash chaining it to the previous event of its job."""

from __future__ import annotations

import psycopg
from psycopg import sql

from ledger.application import JobLedger
from ledger.chain import GENESIS, link
from ledger.commands import Context, NewJob, RecordProgress, Start, Succeed
from ledger.persistence import persistence_env
from ledger.settings import Settings

CTX = Context(actor="tok", request_id="req")


def stored_chain(settings: Settings) -> list[tuple[str, int, bytes, bytes]]:
    """(stream, version, stored hash, recomputed hash) for every event, in log order."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT e.originator_id, e.originator_version, e.topic, e.state, h.hash"
                " FROM {s}.ledger_events e JOIN {s}.event_hashes h"
                " ON h.position = e.notification_id ORDER BY e.notification_id"
            ).format(s=sql.Identifier(settings.database_schema))
        ).fetchall()
    last: dict[str, bytes] = {}
    out = []
    for stream, version, topic, state, stored in rows:
        expected = link(last.get(stream, GENESIS), stream, version, topic, bytes(state))
        last[stream] = bytes(stored)
        out.append((stream, version, bytes(stored), expected))
    return out


def test_each_event_is_chained_across_single_and_batched_appends(
    ledger: JobLedger, settings: Settings
) -> None:
    ledger.create_job("acme", NewJob(job_id="a", job_type="x"), CTX)
    ledger.create_job("acme", NewJob(job_id="b", job_type="x"), CTX)
    ledger.record("acme", "a", Start(), CTX)
    ledger.record_batch(
        "acme",
        [("a", RecordProgress(progress=5)), ("b", Start()), ("a", Succeed()), ("b", Succeed())],
        CTX,
    )
    chain = stored_chain(settings)
    assert len(chain) == 7
    assert all(stored == expected for _, _, stored, expected in chain)
    assert len({stored for _, _, stored, _ in chain}) == 7


def test_large_batches_chain_to_heads_known_here_and_to_heads_written_elsewhere(
    ledger: JobLedger, settings: Settings
) -> None:
    ids = [f"job-{n}" for n in range(150)]
    ledger.record_batch("acme", [(i, NewJob(job_id=i, job_type="x")) for i in ids], CTX)
    ledger.record_batch("acme", [(i, Start()) for i in ids], CTX)  # heads known here
    # Another process knows none of the heads: it reads them before it locks the log.
    other = JobLedger(env=persistence_env(settings))
    try:
        other.record_batch(
            "acme", [(i, RecordProgress(progress=p)) for p in (1, 2) for i in ids], CTX
        )
    finally:
        other.close()
    ledger.record_batch("acme", [(i, Succeed()) for i in ids[:120]], CTX)  # heads stale here
    chain = stored_chain(settings)
    assert len(chain) == 150 * 4 + 120
    assert all(stored == expected for _, _, stored, expected in chain)


def test_an_edited_event_no_longer_matches_its_hash(ledger: JobLedger, settings: Settings) -> None:
    ledger.create_job("acme", NewJob(job_id="a", job_type="x"), CTX)
    ledger.record("acme", "a", Start(), CTX)
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {s}.ledger_events SET state = convert_to("
                "replace(convert_from(state, 'UTF8'), '\"x\"', '\"y\"'), 'UTF8')"
                " WHERE originator_version = 1"
            ).format(s=sql.Identifier(settings.database_schema))
        )
    broken = [(s, v) for s, v, stored, expected in stored_chain(settings) if stored != expected]
    assert broken == [("acme/a", 1)]
