"""Tamper evidence: each event's hash chains it to the previous event of its job.

hash(n) = SHA-256(hash(n-1) || canonical bytes of event n), with an empty hash
before a job's first event. The canonical bytes are the stored row itself
(stream id, version, topic, state), length-prefixed so no two rows share them.
"""

from __future__ import annotations

import hashlib
from typing import Final

GENESIS: Final = b""


def canonical_bytes(originator_id: str, originator_version: int, topic: str, state: bytes) -> bytes:
    """The bytes a stored event is hashed over."""
    parts = (originator_id.encode(), originator_version.to_bytes(8, "big"), topic.encode(), state)
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


def link(
    previous: bytes, originator_id: str, originator_version: int, topic: str, state: bytes
) -> bytes:
    """The hash of an event whose predecessor in its job hashed to `previous`."""
    digest = hashlib.sha256(previous)
    digest.update(canonical_bytes(originator_id, originator_version, topic, state))
    return digest.digest()
