"""The search SQL builder, without a database: what it refuses before any SQL is sent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger.errors import InvalidCommand
from projections.conditions import Condition, Params, field_expr, quoted_name, where_sql


@pytest.mark.parametrize(
    "field", ["secret", "labels.", "labels.x'; DROP TABLE jobs; --", "result.x", "tenant;"]
)
def test_unknown_fields_and_unsafe_keys_are_refused(field: str) -> None:
    with pytest.raises(InvalidCommand):
        field_expr(field)


@pytest.mark.parametrize("name", ['a"b', "1x", "", "x" * 65])
def test_unsafe_result_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidCommand):
        quoted_name(name)


@pytest.mark.parametrize(
    "condition",
    [
        Condition("progress", "eq", "ten"),
        Condition("created_at", "gt", "yesterday"),
        Condition("status", "in", "running"),
        Condition("id", "contains", 7),
        Condition("status", "contains_all", ["x"]),
        Condition("id", "regex", None),
    ],
)
def test_values_that_do_not_fit_their_field_are_refused(condition: Condition) -> None:
    with pytest.raises(InvalidCommand):
        where_sql("t", [condition], [], None, Params())


def test_values_travel_as_parameters() -> None:
    params = Params()
    where = where_sql(
        "acme",
        [Condition("labels.plugin_id", "contains", "50%_off"),
         Condition("created_at", "gte", "2024-01-01T00:00:00Z")],
        [Condition("status", "eq", "failed"), Condition("counters.failed", "gt", 0)],
        "nightly",
        params,
    )  # fmt: skip
    assert "50%" not in where and "acme" not in where and "nightly" not in where
    assert params.values == [
        "acme", "%50\\%\\_off%", datetime(2024, 1, 1, tzinfo=UTC), "failed", 0, "%nightly%",
    ]  # fmt: skip
    assert " OR " in where and where.count("$") == len(params.values) + 2  # $6 thrice
