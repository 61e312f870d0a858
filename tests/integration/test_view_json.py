"""PostgreSQL writes a running-set job (views.view_json_sql) with the bytes the projection
stores for it (views.running_body), whatever text and time it holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.views import RUNNING_VIEW, running_body, view_json_sql

# PostgreSQL text holds any character but U+0000 (and UTF-8 has no lone surrogates).
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]))
MOMENTS = st.none() | st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)
WRITE_OUT = (
    # format()'s own %s doubled, for psycopg's placeholders.
    f"SELECT convert_to({view_json_sql(RUNNING_VIEW).replace('%', '%%')}, 'UTF8') FROM (VALUES"
    " (%s::text, %s::text, %s::text, %s::int4, %s::timestamptz))"
    f" AS running ({', '.join(RUNNING_VIEW)})"
)


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@settings(max_examples=150, deadline=None)
@given(
    job_id=TEXT,
    job_type=TEXT,
    status=TEXT,
    progress=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    start_time=MOMENTS,
)
def test_postgresql_writes_a_running_job_as_the_projection_stores_it(
    conn: psycopg.Connection[tuple[object, ...]],
    job_id: str,
    job_type: str,
    status: str,
    progress: int,
    start_time: datetime | None,
) -> None:
    row = conn.execute(
        WRITE_OUT, (job_id, job_type, status, progress, start_time), prepare=True
    ).fetchone()
    assert row is not None
    assert row[0] == running_body(job_id, job_type, status, progress, start_time)
