"""The write path: Idempotency-Key replays, strict body decoding, and answers stored with events.

Every POST and DELETE goes through `write_gate` (a before_request hook, so after the
auth guards): it reads the body (413 over the limit), replays the first answer to a
repeated key (422 if the key came with another request), and decodes the body
strictly (400 naming the field, stored as that key's answer). The handler then writes
through `api.writes.Writer`.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from typing import TYPE_CHECKING, Any, Final

import msgspec
import msgspec.inspect
from litestar import Response
from litestar.concurrency import sync_to_thread
from litestar.utils.scope.state import ScopeState

from api.auth import GLOBAL_SCOPE, principal_of
from api.parts import parts_of
from api.problems import (
    PROBLEM_JSON,
    ApiError,
    BadField,
    MalformedJson,
    Problem,
    field_of_msgspec_error,
    problem_of,
)
from api.request_id import request_id_of
from ledger.idempotency import Answer, IdempotencyKey, IdempotencyStore

if TYPE_CHECKING:
    from litestar import Request

log = logging.getLogger("api")

KEY_HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
POSITION_HEADER: Final = "X-Ledger-Position"
_KEY: Final = re.compile(r"^[\x21-\x7e]{1,255}$")
KEY_STATE: Final = "ledger_idempotency_key"
MAX_DEPTH: Final = 32
ESCAPED_NUL: Final = b"\\u0000"
"""How deep free-form JSON (parameters, result, error_details) may nest."""
_peek: Final = msgspec.json.Decoder(dict[str, object])
_CONTAINERS: Final = (
    msgspec.Struct,
    list,
    dict,
)  # a tuple: isinstance takes it faster than a union

Headers = dict[str, str]


@cache
def _decoder(body_type: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(body_type)


def decode_problem(error: msgspec.DecodeError) -> ApiError:
    """A 400 for a body msgspec refused: malformed JSON, or the field that is wrong."""
    if isinstance(error, msgspec.ValidationError):
        name, message = field_of_msgspec_error(str(error))
        return BadField(name, message)
    return MalformedJson(str(error))


def json_response(answer: Answer, headers: Headers) -> Response[bytes]:
    """An answer as given: JSON for success, problem+json for a refusal."""
    media_type = "application/json" if answer.status < 400 else PROBLEM_JSON
    return Response(answer.body, status_code=answer.status, media_type=media_type, headers=headers)


def success_headers(request: Request[Any, Any, Any], answer: Answer) -> Headers:
    """ETag (and Location for a created job) worked out from a success body."""
    # Only a 201 answers with one job's version and position; a batch's 200 holds a
    # result per item, which decoding would only rebuild to find nothing at the top.
    if answer.status != 201 or not answer.body:
        return {}
    try:
        body = _peek.decode(answer.body)
    except msgspec.DecodeError:
        return {}
    headers: Headers = {}
    if isinstance(version := body.get("version"), int):
        headers["ETag"] = f'"{version}"'
    if isinstance(position := body.get("position"), int):
        headers[POSITION_HEADER] = str(position)
    if answer.status == 201 and request.url.path.rstrip("/").endswith("/jobs"):
        location = f"{request.url.path.rstrip('/')}/{body.get('id')}"
        if principal_of(request).tenant is None:  # a global token names the tenant to read
            location += f"?tenant={body.get('tenant')}"
        headers["Location"] = location
    return headers


def replay(request: Request[Any, Any, Any], answer: Answer) -> Response[bytes]:
    return json_response(answer, {**success_headers(request, answer), REPLAYED_HEADER: "true"})


def _store(request: Request[Any, Any, Any]) -> IdempotencyStore:
    return parts_of(request.app.state).ledger.answers


def _path_and_query(request: Request[Any, Any, Any]) -> str:
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{request.url.path}?{query}" if query else request.url.path


async def write_gate(request: Request[Any, Any, Any]) -> Response[bytes] | None:
    """before_request of every write: replay a repeated key, else decode the body strictly."""
    body = await request.body()
    key: IdempotencyKey | None = None
    if (raw_key := request.headers.get(KEY_HEADER)) is not None:
        if not _KEY.match(raw_key):
            return (
                BadField(KEY_HEADER, "must be 1 to 255 visible ASCII characters")
                .problem()
                .response()
            )
        scope = principal_of(request).tenant or GLOBAL_SCOPE
        key = IdempotencyKey.of(scope, raw_key, request.method, _path_and_query(request), body)
        # A key used with another request raises IdempotencyKeyReused: 422.
        if (first := await sync_to_thread(_store(request).find, key)) is not None:
            return replay(request, first)
        request.state[KEY_STATE] = key
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is not None:
        try:
            decoded = _decoder(data.annotation).decode(body)
        except msgspec.DecodeError as error:
            return await refuse(request, key, decode_problem(error))
        except RecursionError:
            return await refuse(request, key, MalformedJson("nested too deeply"))
        except UnicodeDecodeError:  # msgspec raises it, not DecodeError, for invalid UTF-8
            return await refuse(request, key, MalformedJson("the body is not valid UTF-8"))
        # U+0000 can only be in a JSON body as an escape; without one, only the nesting
        # of free-form values (parameters, results, details) needs a look.
        full = ESCAPED_NUL in body
        bad = unstorable(msgspec.to_builtins(decoded)) if full else too_deep(decoded)
        if bad is not None:
            return await refuse(request, key, BadField(*bad))
        # Handed to Litestar as the request's decoded JSON: the handler's `data` is
        # then this very value (msgspec passes an instance of the type through), not
        # the body decoded and converted a second time (4% of a batch's time).
        ScopeState.from_scope(request.scope).json = decoded
    return None


def too_deep(value: object, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """`unstorable` of the decoded body, for a body without U+0000: it walks the
    request's own structure and looks into free-form values only."""
    if isinstance(value, msgspec.Struct):
        for name in _open_fields(type(value)):
            item = getattr(value, name)
            if isinstance(item, _CONTAINERS):
                inner = f"{path}.{name}" if path else name
                if (found := too_deep(item, inner, depth + 1)) is not None:
                    return found
        return None
    if isinstance(value, list) and value and isinstance(value[0], msgspec.Struct):
        for index, item in enumerate(value):
            if isinstance(item, msgspec.Struct) and not _open_fields(type(item)):
                continue  # nothing in it can nest: a progress item, say
            # The item's path is spelled out only for the one that is refused.
            if too_deep(item, "", depth + 1) is not None:
                return too_deep(item, f"{path}[{index}]", depth + 1)
        return None
    return unstorable(value, path, depth)


@cache
def _open_fields(struct: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of a body struct that may nest without bound: those holding free-form
    JSON or further structs. A typed field (a count, labels of strings) can't."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(f.name for f in info.fields if _may_nest(f.type))


def _may_nest(kind: msgspec.inspect.Type) -> bool:
    if isinstance(kind, msgspec.inspect.AnyType | msgspec.inspect.StructType):
        return True
    if isinstance(kind, msgspec.inspect.Metadata):
        return _may_nest(kind.type)
    if isinstance(kind, msgspec.inspect.UnionType):
        return any(_may_nest(k) for k in kind.types)
    if isinstance(kind, msgspec.inspect.DictType):
        return _may_nest(kind.key_type) or _may_nest(kind.value_type)
    if isinstance(
        kind,
        msgspec.inspect.ListType
        | msgspec.inspect.SetType
        | msgspec.inspect.FrozenSetType
        | msgspec.inspect.VarTupleType,
    ):
        return _may_nest(kind.item_type)
    if isinstance(kind, msgspec.inspect.TupleType):
        return any(_may_nest(k) for k in kind.item_types)
    return False


def unstorable(value: object, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """The path of the first value PostgreSQL or the event store could not keep, and why:
    a string or key holding U+0000 (text and jsonb refuse it), or nesting over MAX_DEPTH."""
    if depth > MAX_DEPTH:
        return path, f"must not nest deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        return (path or "body", "must not contain U+0000") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return inner, "must not contain U+0000"
            if (found := unstorable(item, inner, depth + 1)) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := unstorable(item, f"{path}[{index}]", depth + 1)) is not None:
                return found
    return None


async def refuse(
    request: Request[Any, Any, Any], key: IdempotencyKey | None, error: Exception
) -> Response[bytes]:
    """A 4xx answer, stored as the key's first answer (or the one stored before it).

    A server-side failure (5xx) is logged and never stored: a retry may succeed.
    """
    problem: Problem = problem_of(error)
    if problem.status >= 500:
        log.error("write failed (request %s)", request_id_of(request.scope), exc_info=error)
        return problem.response()
    if key is None:
        return problem.response()
    return await remember(request, key, problem.answer(), problem.headers)


async def remember(
    request: Request[Any, Any, Any], key: IdempotencyKey, answer: Answer, headers: Headers
) -> Response[bytes]:
    """Store an answer that appended nothing; if another came first, replay that one."""
    stored = await sync_to_thread(_store(request).remember, key, answer)
    if stored != answer:
        return replay(request, stored)
    return json_response(answer, headers)


async def replay_first(request: Request[Any, Any, Any], key: IdempotencyKey) -> Response[bytes]:
    """Replay the answer of the request that took `key` first (it has committed)."""
    first = await sync_to_thread(_store(request).find, key)
    assert first is not None, "a taken key has an answer"
    return replay(request, first)
