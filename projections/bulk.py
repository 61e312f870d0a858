"""Set-based writes for the projections: a batch's rows go to PostgreSQL by binary COPY,
never by a statement per row.

A view knows which of its rows a batch creates (it has read the rows the batch
touches, under its tracking lock, so nothing else writes them meanwhile): those are
copied straight into the table. Rows that already exist are copied into a
temporary table and upserted from there, still guarded by version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from psycopg.sql import SQL, Identifier
from psycopg.types.json import set_json_dumps, set_json_loads

if TYPE_CHECKING:
    from psycopg import Cursor
    from psycopg.sql import Composed

_encoder = msgspec.json.Encoder()


def fast_json(curs: Cursor[Any]) -> None:
    """Have `curs` read and write jsonb with msgspec: the same JSON values, in a
    fraction of the time `json` takes for a batch's thousands of them."""
    set_json_dumps(_encoder.encode, curs)
    set_json_loads(msgspec.json.decode, curs)


class BulkTable:
    """A read-model table's columns, in the order of its row Struct, and their types."""

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        types: Sequence[str],
        keys: Sequence[str] = ("tenant", "id"),
    ) -> None:
        assert len(columns) == len(types)
        self.types = list(types)
        names = SQL(", ").join(map(Identifier, columns))
        target, staged = Identifier(table), Identifier(f"{table}_staged")
        self.copy = SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(target, names)
        # Unlogged, unindexed, private to the session and emptied at every commit.
        self.create_staging = SQL(
            "CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
        ).format(staged, target)
        self.copy_staged = SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(staged, names)
        self.upsert_staged = SQL(
            "INSERT INTO {target} ({names}) SELECT {names} FROM {staged} "
            "ON CONFLICT ({keys}) DO UPDATE SET {sets} "
            # A replay of older events never overwrites a newer row.
            "WHERE {target}.version < EXCLUDED.version"
        ).format(
            target=target,
            names=names,
            staged=staged,
            keys=SQL(", ").join(map(Identifier, keys)),
            sets=SQL(", ").join(
                SQL("{0} = EXCLUDED.{0}").format(Identifier(c)) for c in columns if c not in keys
            ),
        )

    def insert(self, curs: Cursor[Any], rows: Iterable[Sequence[object]]) -> None:
        """Add rows the table does not hold (values in column order)."""
        self._copy(curs, self.copy, rows)

    def upsert(self, curs: Cursor[Any], rows: Iterable[Sequence[object]]) -> None:
        """Replace rows with later versions of them (or add them)."""
        curs.execute(self.create_staging)
        self._copy(curs, self.copy_staged, rows)
        curs.execute(self.upsert_staged)

    def _copy(
        self, curs: Cursor[Any], statement: Composed, rows: Iterable[Sequence[object]]
    ) -> None:
        with curs.copy(statement) as copy:
            copy.set_types(self.types)
            for row in rows:
                copy.write_row(row)
