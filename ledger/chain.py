"""Tamper evidence: each event's hash chains it to the previous event of its job.

hash(n) = SHA-256(hash(n-1) || canonical bytes of event n), with an empty hash
before a job's first event. The canonical bytes are the stored row itself
(stream id, version, topic, state), length-prefixed so no two rows share them.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

GENESIS: Final = b""


_LENGTHS: Final = struct.Struct(">Q")
_VERSION: Final = struct.Struct(">QQ")  # the version's length (8), then the version


def canonical_bytes(originator_id: str, originator_version: int, topic: str, state: bytes) -> bytes:
    """The bytes a stored event is hashed over."""
    stream, name = originator_id.encode(), topic.encode()
    pack = _LENGTHS.pack
    return b"".join(
        (
            pack(len(stream)),
            stream,
            _VERSION.pack(8, originator_version),
            pack(len(name)),
            name,
            pack(len(state)),
            state,
        )
    )


def link(
    previous: bytes, originator_id: str, originator_version: int, topic: str, state: bytes
) -> bytes:
    """The hash of an event whose predecessor in its job hashed to `previous`."""
    return hashlib.sha256(
        previous + canonical_bytes(originator_id, originator_version, topic, state)
    ).digest()
