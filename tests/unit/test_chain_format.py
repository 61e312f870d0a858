"""The chain hash's bytes are fixed: `ledger verify` recomputes hashes stored long ago."""

from __future__ import annotations

import hashlib

from ledger.chain import GENESIS, link


def _prefixed(part: bytes) -> bytes:
    return len(part).to_bytes(8, "big") + part


def test_link_is_sha256_of_the_previous_hash_and_the_length_prefixed_row() -> None:
    state = b'{"a":1}'
    expected = hashlib.sha256(
        GENESIS
        + _prefixed(b"acme/job-1")
        + _prefixed((1).to_bytes(8, "big"))
        + _prefixed(b"ledger.domain:Job.Created")
        + _prefixed(state)
    ).digest()
    assert link(GENESIS, "acme/job-1", 1, "ledger.domain:Job.Created", state) == expected


def test_known_answers() -> None:
    first = link(GENESIS, "acme/job-1", 1, "ledger.domain:Job.Created", b'{"a":1}')
    assert first.hex() == "cdf34b8c62a558850c34e0f7bda51aa64debc5e14bc70cdbb1158fee69f6b010"
    second = link(bytes(32), "acme/job-1", 2, "ledger.domain:Job.Started", b"{}")
    assert second.hex() == "302e26856106c85d286cd9e6114dce1db962e51827628c413481d8c19246e153"
