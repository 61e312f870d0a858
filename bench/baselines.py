"""Baselines measured in the same run: the library's floor and raw asyncpg inserts."""

from __future__ import annotations

import time

import asyncpg

from bench.stats import Run
from ledger.commands import Context, NewJob
from ledger.domain import Job
from ledger.migrate import migrate
from ledger.persistence import persistence_env
from ledger.settings import Settings


def library_floor(url: str, schema: str, seconds: float) -> Run:
    """The library's own path, one progress event per `app.save()`, from one thread."""
    from eventsourcing.application import Application

    settings = Settings(database_url=url, database_schema=schema)
    migrate(settings)
    env = persistence_env(settings)
    # The library's recorder, mapper and transcoder, not the ledger's.
    del env["APPLICATION_RECORDER_TOPIC"], env["MAPPER_TOPIC"], env["TRANSCODER_TOPIC"]
    app = Application[str](env={**env, "CREATE_TABLE": "y"})
    ctx = Context(actor="bench", request_id="bench")
    jobs = []
    for n in range(64):
        new = NewJob(job_id=f"floor-{n}", job_type="bench")
        job = Job.create(
            tenant="bench",
            job_id=new.job_id,
            job_type=new.job_type,
            actor=ctx.actor,
            request_id=ctx.request_id,
        )
        job.start(actor=ctx.actor, request_id=ctx.request_id)
        app.save(job)
        jobs.append(job)
    latencies = []
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        job = jobs[count % len(jobs)]
        t = time.perf_counter()
        job.record_progress(progress=count % 100, actor=ctx.actor, request_id=ctx.request_id)
        app.save(job)
        latencies.append(time.perf_counter() - t)
        count += 1
    elapsed = time.perf_counter() - started
    app.close()
    return Run(operations=count, seconds=elapsed, latencies=latencies)


RAW_TABLE = """
CREATE TABLE {schema}.raw_events (
    originator_id text NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    notification_id bigserial,
    PRIMARY KEY (originator_id, originator_version)
)
"""

RAW_INSERT = """
INSERT INTO {schema}.raw_events (originator_id, originator_version, topic, state)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[])
"""


async def raw_inserts(url: str, schema: str, seconds: float, per_transaction: int = 1000) -> Run:
    """asyncpg inserting rows shaped like stored events, 1000 a transaction, one connection."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(RAW_TABLE.format(schema=schema))
        insert = await conn.prepare(RAW_INSERT.format(schema=schema))
        topic = "ledger.domain:Job.Progressed"
        state = b'{"progress":42,"current_step":"step","records_processed":420}' * 2
        count = 0
        latencies = []
        started = time.perf_counter()
        version = 0
        while time.perf_counter() - started < seconds:
            version += 1
            ids = [f"bench/raw-{n}" for n in range(per_transaction)]
            t = time.perf_counter()
            async with conn.transaction():
                await insert.fetch(
                    ids,
                    [version] * per_transaction,
                    [topic] * per_transaction,
                    [state] * per_transaction,
                )
            latencies.append(time.perf_counter() - t)
            count += per_transaction
        elapsed = time.perf_counter() - started
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        return Run(operations=count, seconds=elapsed, latencies=latencies)
    finally:
        await conn.close()
