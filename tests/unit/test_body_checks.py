"""The fast check of a decoded write body agrees with the full walk it short-cuts."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from api.idempotency import ESCAPED_NUL, MAX_DEPTH, too_deep, unstorable
from api.schemas import CreateJob, EventBatch


def nested(depth: int) -> object:
    value: object = 1
    for n in range(depth):
        value = {"k": value} if n % 2 else [value]
    return value


free_form = st.recursive(
    st.none() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
) | st.integers(MAX_DEPTH - 4, MAX_DEPTH + 2).map(nested)

items = st.one_of(
    st.fixed_dictionaries(
        {"job_id": st.just("a"), "type": st.just("progress")},
        optional={
            "counters": st.dictionaries(
                st.text(min_size=1, max_size=3), st.integers(0, 9), max_size=3
            )
        },
    ),
    st.fixed_dictionaries(
        {
            "job_id": st.just("b"),
            "type": st.just("succeeded"),
            "result": st.dictionaries(st.text(max_size=3), free_form, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {
            "job_id": st.just("c"),
            "type": st.just("created"),
            "job_type": st.just("x"),
            "parameters": st.dictionaries(st.text(max_size=3), free_form, max_size=3),
        },
        optional={
            "labels": st.dictionaries(
                st.text(min_size=1, max_size=3), st.text(max_size=3), max_size=3
            )
        },
    ),
)


def check(body: bytes, kind: type[Any]) -> None:
    decoded = msgspec.json.decode(body, type=kind)
    assert ESCAPED_NUL not in body
    assert too_deep(decoded) == unstorable(msgspec.to_builtins(decoded))


@settings(max_examples=300)
@given(st.lists(items, min_size=1, max_size=5))
def test_batches(events: list[dict[str, Any]]) -> None:
    body = msgspec.json.encode({"events": events})
    if ESCAPED_NUL not in body:
        check(body, EventBatch)


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=3), free_form, max_size=4))
def test_creates(parameters: dict[str, Any]) -> None:
    body = msgspec.json.encode({"job_type": "x", "parameters": parameters})
    if ESCAPED_NUL not in body:
        check(body, CreateJob)


def test_too_deep_names_the_path() -> None:
    body = msgspec.json.encode(
        {
            "events": [
                {"job_id": "a", "type": "progress"},
                {"job_id": "b", "type": "succeeded", "result": {"r": nested(40)}},
            ]
        }
    )
    found = too_deep(msgspec.json.decode(body, type=EventBatch))
    assert found is not None and found[0].startswith("events[1].result.r")
