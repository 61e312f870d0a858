"""Array parameters encoded in PostgreSQL's binary format before a statement is sent.

psycopg encodes a list parameter element by element in Python when the statement is
executed. An append executes its insert once the table lock is on its way, so for a
batch of 1,000 events that work (about 1 ms, longer while other threads hold the
interpreter) was done with the lock held and every other writer waiting. Encoded
beforehand, the parameter is passed as it is.

The format is PostgreSQL's `array_send`: dimensions, flags, element type, the length
and lower bound of the one dimension, then each element as a length and its bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import ClassVar, Final

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

TEXT_OID: Final = 25
INT8_OID: Final = 20
BYTEA_OID: Final = 17
_HEADER: Final = struct.Struct(">iiIii")  # ndim, has nulls, element type, length, lower bound
_EMPTY: Final = struct.Struct(">iiI")  # an empty array has no dimension
_LENGTH: Final = struct.Struct(">i")


class EncodedArray(bytes):
    """An array parameter already in binary format; pass it to a `%b` placeholder."""

    array_oid: ClassVar[int]


class TextArray(EncodedArray):
    array_oid = 1009


class Int8Array(EncodedArray):
    array_oid = 1016


class ByteaArray(EncodedArray):
    array_oid = 1001


def text_array(values: Sequence[str]) -> TextArray:
    return TextArray(_array(TEXT_OID, [v.encode() for v in values]))


def bytea_array(values: Sequence[bytes]) -> ByteaArray:
    return ByteaArray(_array(BYTEA_OID, values))


def int8_array(values: Sequence[int]) -> Int8Array:
    if not values:
        return Int8Array(_EMPTY.pack(0, 0, INT8_OID))
    # Each element is its length (8) and the value: one pack for all of them.
    lengths_and_values = [x for v in values for x in (8, v)]
    body = struct.pack(f">{'iq' * len(values)}", *lengths_and_values)
    return Int8Array(_HEADER.pack(1, 0, INT8_OID, len(values), 1) + body)


def _array(element_oid: int, items: Sequence[bytes]) -> bytes:
    if not items:
        return _EMPTY.pack(0, 0, element_oid)
    pack = _LENGTH.pack
    parts = [_HEADER.pack(1, 0, element_oid, len(items), 1)]
    for item in items:
        parts += (pack(len(item)), item)
    return b"".join(parts)


class _EncodedArrayDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: EncodedArray) -> bytes:
        return obj


def _dumper_of(cls: type[EncodedArray]) -> type[Dumper]:
    return type(f"{cls.__name__}Dumper", (_EncodedArrayDumper,), {"oid": cls.array_oid})


# On psycopg's global adapters, which every connection starts from: these types are the
# ledger's own, so no other parameter is dumped differently.
for _cls in (TextArray, Int8Array, ByteaArray):
    psycopg.adapters.register_dumper(_cls, _dumper_of(_cls))
