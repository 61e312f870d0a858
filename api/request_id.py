"""The request id: taken from X-Request-ID when it is well formed, else made here; echoed back."""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from litestar.types import Scope

HEADER: Final = "X-Request-ID"
_VALID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_STATE_KEY: Final = "ledger_request_id"


def request_id_of(scope: Scope) -> str:
    """This request's id, chosen once: the client's if valid, else `req-` and 16 hex digits."""
    state = scope.setdefault("state", {})
    if (known := state.get(_STATE_KEY)) is not None:
        return str(known)
    sent = next(
        (v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"x-request-id"),
        "",
    )
    chosen = sent if _VALID.match(sent) else new_request_id()
    state[_STATE_KEY] = chosen
    return chosen


def new_request_id() -> str:
    """A request id made here: `req-` and 16 hex digits.

    From the process's seeded generator, not the system's: an id correlates log lines and
    needs no secrecy, and `os.urandom` is a system call that lets the event loop's thread
    lose the interpreter lock to the write threads, for a switch interval, on every request.
    """
    return f"req-{random.getrandbits(64):016x}"
