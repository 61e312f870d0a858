"""Arrays encoded ahead of a statement (ledger.arrays) read back as the values they hold."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.arrays import bytea_array, int8_array, text_array

# PostgreSQL text holds any character but U+0000 (and UTF-8 has no lone surrogates).
TEXTS = st.lists(
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"])), max_size=30
)
INTS = st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=30)
BLOBS = st.lists(st.binary(max_size=300), max_size=30)


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@settings(max_examples=60, deadline=None)
@given(texts=TEXTS, ints=INTS, blobs=BLOBS)
def test_encoded_arrays_read_back_as_their_values(
    conn: psycopg.Connection[tuple[object, ...]],
    texts: list[str],
    ints: list[int],
    blobs: list[bytes],
) -> None:
    row = conn.execute(
        "SELECT %b::text[], %b::bigint[], %b::bytea[]",
        (text_array(texts), int8_array(ints), bytea_array(blobs)),
        prepare=True,
    ).fetchone()
    assert row == (texts, ints, blobs)


def test_encoded_arrays_unnest_in_step(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = conn.execute(
        "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::bytea[])",
        (text_array(["a", "é☃"]), int8_array([1, 2**62]), bytea_array([b"", b"\x00\xff"])),
    ).fetchall()
    assert rows == [("a", 1, b""), ("é☃", 2**62, b"\x00\xff")]
