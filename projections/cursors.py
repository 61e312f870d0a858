"""Opaque page cursors: where a page of the job list ended, checked when they come back.

A cursor is the keyset position of a page's last job: (created_at, id, tenant),
msgpack-encoded and base64url'd. Clients must treat it as opaque; anything that
does not decode to exactly this shape is refused as an invalid `after`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import msgspec

from ledger.errors import InvalidCommand

VERSION: Final = 1
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_LENGTH: Final = 1024
INVALID: Final = "is not a cursor this service gave out"


class _Encoded(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    version: Literal[1]
    created_at_us: int
    id: str
    tenant: str


class Cursor(msgspec.Struct, frozen=True):
    """The position of a job in the list order (newest first)."""

    created_at: datetime
    id: str
    tenant: str


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(_Encoded)


def encode_cursor(cursor: Cursor) -> str:
    """The opaque text for `cursor`."""
    micros = (cursor.created_at - EPOCH) // timedelta(microseconds=1)
    return encode_cursor_at(micros, cursor.id, cursor.tenant)


def encode_cursor_at(created_at_us: int, job_id: str, tenant: str) -> str:
    """The opaque text for the job created `created_at_us` microseconds after the epoch."""
    raw = _encoder.encode(_Encoded(VERSION, created_at_us, job_id, tenant))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> Cursor:
    """The cursor `text` stands for; InvalidCommand('after', ...) if it is not one of ours."""
    if not text or len(text) > MAX_LENGTH:
        raise InvalidCommand("after", INVALID)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        encoded = _decoder.decode(raw)
        created_at = EPOCH + timedelta(microseconds=encoded.created_at_us)
    except (binascii.Error, ValueError, msgspec.DecodeError, OverflowError):
        raise InvalidCommand("after", INVALID) from None
    if not encoded.id or not encoded.tenant:
        raise InvalidCommand("after", INVALID)
    return Cursor(created_at=created_at, id=encoded.id, tenant=encoded.tenant)
