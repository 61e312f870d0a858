"""How an event's state is stored: JSON written and read by msgspec.

The stored form is the one the library's JSONTranscoder writes, so events stored
by either read the same: a datetime is `{"_type_": "datetime_iso", "_data_":
"<ISO 8601>"}` (written by msgspec, UTC as `Z`: a third of `isoformat`'s time, and
both read it). Datetimes are only ever an event's own fields, or the fields of a
snapshot's `state` (the job's attributes), so only there are values tagged; deeper
values are the callers' JSON (job parameters, results, error details) and come back
exactly as sent, even when they happen to look like a tagged value.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Final

import msgspec
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

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
        name: _tag(value) if type(value) is datetime else value for name, value in fields.items()
    }


def _tag(moment: datetime) -> dict[str, Any]:
    """A datetime in the library's stored form (msgspec writes the datetime itself)."""
    return {"_type_": DATETIME, "_data_": moment}


def _untag(fields: dict[str, Any]) -> dict[str, Any]:
    for name, value in fields.items():
        if type(value) is dict and len(value) == 2 and value.get("_type_") == DATETIME:
            fields[name] = datetime.fromisoformat(value["_data_"])
    return fields


class EventMapper(Mapper[str]):
    """The library's mapper, with a short cut for events whose only datetime is their
    timestamp (every event of a job): the state is encoded without looking at the
    type of each of its values (a sixth of a batch's encoding)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain: dict[type, str | None] = {}
        """Topic of each event class the short cut suits, else None."""

    def to_stored_event(self, domain_event: DomainEventProtocol[str]) -> StoredEvent:
        cls = type(domain_event)
        try:
            topic = self._plain[cls]
        except KeyError:
            topic = self._plain[cls] = self._short_cut_topic(cls)
        if topic is None:
            return super().to_stored_event(domain_event)
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        state["timestamp"] = _tag(state["timestamp"])
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=_encode(state),
        )

    def _short_cut_topic(self, cls: type) -> str | None:
        if (
            type(self.transcoder) is not StateTranscoder
            or self.compressor is not None
            or self.cipher is not None
            or getattr(cls, "class_version", 1) != 1
            or not dataclasses.is_dataclass(cls)
        ):
            return None
        # Annotations are strings here (postponed evaluation): a field that may hold a
        # datetime names it. Deeper values are callers' JSON, never tagged (see above).
        kinds = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        if SNAPSHOT_STATE in kinds:  # a snapshot's state holds the job's datetimes
            return None
        if kinds.pop("timestamp", None) != "datetime" or any(
            "datetime" in kind for kind in kinds.values()
        ):
            return None
        return get_topic(cls)
