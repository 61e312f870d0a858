"""How an event's state is stored: JSON written and read by msgspec.

The stored form is the one the library's JSONTranscoder writes, so events stored
by either read the same: a datetime is `{"_type_": "datetime_iso", "_data_":
"<ISO 8601>"}`. Datetimes are only ever an event's own fields, or the fields of a
snapshot's `state` (the job's attributes), so only there are values tagged; deeper
values are the callers' JSON (job parameters, results, error details) and come back
exactly as sent, even when they happen to look like a tagged value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec
from eventsourcing.persistence import Transcoder

DATETIME: Final = "datetime_iso"
SNAPSHOT_STATE: Final = "state"
"""The field of the library's snapshots that holds the aggregate's attributes."""

_encode: Final = msgspec.json.Encoder().encode
_decode: Final = msgspec.json.Decoder().decode


class StateTranscoder(Transcoder):
    """Encodes and decodes event state dicts, several times faster than the library's."""

    def encode(self, obj: Any) -> bytes:
        state: dict[str, Any] = _tagged(obj)
        inner = state.get(SNAPSHOT_STATE)
        if type(inner) is dict:
            state[SNAPSHOT_STATE] = _tagged(inner)
        return _encode(state)

    def decode(self, data: bytes) -> Any:
        state: dict[str, Any] = _untag(_decode(data))
        inner = state.get(SNAPSHOT_STATE)
        if type(inner) is dict:
            _untag(inner)
        return state


def _tagged(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"_type_": DATETIME, "_data_": value.isoformat()}
        if type(value) is datetime
        else value
        for name, value in fields.items()
    }


def _untag(fields: dict[str, Any]) -> dict[str, Any]:
    for name, value in fields.items():
        if type(value) is dict and len(value) == 2 and value.get("_type_") == DATETIME:
            fields[name] = datetime.fromisoformat(value["_data_"])
    return fields
