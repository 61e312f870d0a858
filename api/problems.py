"""The one map from errors to RFC 9457 problems (application/problem+json).

Every answer that is not a success goes through `problem_of`, whether it is raised
and caught by Litestar's exception handlers or rendered to bytes and stored as the
first answer to an idempotent write.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import singledispatch
from typing import TYPE_CHECKING, Any, Final

import asyncpg
import eventsourcing.persistence
import msgspec
import psycopg
from litestar import Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from api.request_id import request_id_of
from ledger.errors import (
    IdempotencyKeyReused,
    InvalidCommand,
    InvalidTransition,
    JobAlreadyExists,
    JobGone,
    JobNotFound,
    LedgerError,
    VersionConflict,
)
from ledger.idempotency import Answer

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import Scope

log = logging.getLogger("api")

PROBLEM_JSON: Final = "application/problem+json"
TYPE_BASE: Final = "https://job-ledger.dev/problems/"
_encoder: Final = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: status, a stable `type` slug, title, detail and extra members."""

    status: int
    slug: str
    title: str
    detail: str
    extras: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extras,
        }

    def answer(self) -> Answer:
        """The problem as stored bytes (for an idempotent write's first answer)."""
        return Answer(status=self.status, body=_encoder.encode(self.document()))

    def response(self) -> Response[bytes]:
        return Response(
            self.answer().body,
            status_code=self.status,
            media_type=PROBLEM_JSON,
            headers=self.headers,
        )


# -- errors the API raises itself ---------------------------------------------------


class ApiError(Exception):
    """A client error found by the API layer (not the ledger)."""

    def problem(self) -> Problem:
        raise NotImplementedError


class BadField(ApiError):
    """A request field (body, query or header) has a value the API refuses."""

    def __init__(self, name: str, detail: str) -> None:
        self.field = name
        self.detail = detail
        super().__init__(f"{name}: {detail}")

    def problem(self) -> Problem:
        return Problem(400, "invalid-field", "Invalid field", str(self), {"field": self.field})


class MalformedJson(ApiError):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)

    def problem(self) -> Problem:
        return Problem(400, "malformed-json", "Malformed JSON", f"the body is not JSON: {self}")


class WrongTenant(ApiError):
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        super().__init__(f"this token belongs to tenant {tenant}")

    def problem(self) -> Problem:
        return Problem(403, "forbidden", "Forbidden", str(self))


class NotReady(ApiError):
    """The projections have not reached the position a read asked for."""

    def __init__(self, wanted: int, reached: int, retry_after: int) -> None:
        self.wanted = wanted
        self.reached = reached
        self.retry_after = retry_after
        super().__init__(f"the read models are at position {reached}, not yet {wanted}")

    def problem(self) -> Problem:
        return Problem(
            503,
            "position-not-reached",
            "Position not reached yet",
            str(self),
            {"min_position": self.wanted, "position": self.reached},
            {"Retry-After": str(self.retry_after)},
        )


class Unavailable(ApiError):
    """A part the service needs (the database) does not answer."""

    def problem(self) -> Problem:
        return Problem(
            503, "unavailable", "Service unavailable", str(self), {}, {"Retry-After": "1"}
        )


DATABASE_DOWN: Final = (
    eventsourcing.persistence.OperationalError,
    eventsourcing.persistence.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # What asyncpg raises when the server goes away in the middle of a query
    # ("cannot switch to state ...; another operation is in progress").
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    ConnectionError,
    OSError,
)
"""What the drivers raise when PostgreSQL is down, restarting or unreachable: 503, not 500.

A write cut off this way may or may not have committed; a retry with the same
Idempotency-Key finds out without writing twice."""


# -- the map ---------------------------------------------------------------------------


@singledispatch
def problem_of(error: Exception) -> Problem:
    """The problem an error is answered with (500 without internals for the unexpected)."""
    return Problem(
        500, "internal-error", "Internal server error", "the server failed; see its logs"
    )


@problem_of.register
def _(error: ApiError) -> Problem:
    return error.problem()


def _database_down(error: Exception) -> Problem:
    return Unavailable("the database does not answer; retry shortly").problem()


for _down in DATABASE_DOWN:
    problem_of.register(_down, _database_down)


@problem_of.register
def _(error: LedgerError) -> Problem:
    return problem_of.dispatch(Exception)(error)


@problem_of.register
def _(error: JobNotFound) -> Problem:
    return Problem(404, "job-not-found", "Job not found", str(error), {"job_id": error.job_id})


@problem_of.register
def _(error: JobGone) -> Problem:
    return Problem(410, "job-deleted", "Job deleted", str(error), {"job_id": error.job_id})


@problem_of.register
def _(error: JobAlreadyExists) -> Problem:
    return Problem(409, "job-exists", "Job already exists", str(error), {"job_id": error.job_id})


@problem_of.register
def _(error: InvalidTransition) -> Problem:
    # RFC 9457 reserves `status` for the HTTP status, so the job's is `job_status`.
    extras = {"job_id": error.job_id, "job_status": error.status, "action": error.action}
    return Problem(409, "invalid-transition", "Invalid transition", str(error), extras)


@problem_of.register
def _(error: InvalidCommand) -> Problem:
    return BadField(error.field, error.reason).problem()


@problem_of.register
def _(error: VersionConflict) -> Problem:
    extras = {"job_id": error.job_id, "expected": error.expected, "version": error.actual}
    return Problem(412, "version-mismatch", "Version mismatch", str(error), extras)


@problem_of.register
def _(error: IdempotencyKeyReused) -> Problem:
    return Problem(422, "idempotency-key-reused", "Idempotency key reused", str(error))


@problem_of.register
def _(error: HTTPException) -> Problem:
    status = error.status_code
    if status >= 500:
        return problem_of.dispatch(Exception)(error)
    return Problem(status, f"http-{status}", str(error.detail), str(error.detail))


@problem_of.register
def _(error: ValidationException) -> Problem:
    name, message = _first_invalid(error.extra)
    if name is None:
        return Problem(400, "bad-request", "Bad request", str(error.detail))
    return BadField(name, message).problem()


@problem_of.register
def _(error: NotAuthorizedException) -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Unauthorized",
        str(error.detail),
        headers={"WWW-Authenticate": 'Bearer realm="job-ledger"'},
    )


@problem_of.register
def _(error: PermissionDeniedException) -> Problem:
    return Problem(403, "forbidden", "Forbidden", str(error.detail))


@problem_of.register
def _(error: NotFoundException) -> Problem:
    return Problem(404, "not-found", "Not found", str(error.detail))


@problem_of.register
def _(error: MethodNotAllowedException) -> Problem:
    return Problem(
        405,
        "method-not-allowed",
        "Method not allowed",
        str(error.detail),
        headers=error.headers or {},
    )


@problem_of.register
def _(error: RequestEntityTooLarge) -> Problem:
    return Problem(413, "body-too-large", "Request body too large", "the body is over the limit")


_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MSGSPEC_FIELD = re.compile(r"field `(?P<name>[^`]+)`")


def field_of_msgspec_error(message: str) -> tuple[str, str]:
    """The field a msgspec validation message is about (dotted path) and the message alone."""
    path = ""
    if match := _MSGSPEC_PATH.search(message):
        path = match["path"].replace("[...]", "").lstrip(".")
        message = message[: match.start()]
    if (named := _MSGSPEC_FIELD.search(message)) and ("missing" in message or "unknown" in message):
        path = f"{path}.{named['name']}" if path else named["name"]
    return path or "body", message


def _first_invalid(extra: object) -> tuple[str | None, str]:
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        first = extra[0]
        key = first.get("key")
        return (str(key) if key else None), str(first.get("message", "invalid value"))
    return None, ""


# -- OpenAPI ------------------------------------------------------------------------------


class ProblemDocument(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem, as every error is answered (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
    """400: the body, query or header field at fault (dotted path for nested fields)."""
    job_id: str | None = None
    job_status: str | None = None
    """409 invalid-transition: the job's current status."""
    expected: int | None = None
    """412: the version If-Match named."""
    version: int | None = None
    """412: the job's current version."""


MEANINGS: Final = {
    400: "Malformed JSON, or a field refused (`field` names it)",
    401: "No bearer token, or an unknown, malformed or revoked one",
    403: "The token's role or tenant does not allow this",
    404: "No such job in the tenant",
    409: "The job's status does not allow this (`job_status`), or the id exists",
    410: "The job was deleted",
    412: "If-Match names another version than the job's",
    413: "The body is over the size limit",
    422: "The Idempotency-Key was used with another method, path or body",
    429: "Too many requests from this credential (see Retry-After)",
    503: "The database does not answer, or the read models did not reach `min_position` "
    "in time (see Retry-After)",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems an operation may answer with."""
    return {
        status: ResponseSpec(
            ProblemDocument,
            description=MEANINGS[status],
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in statuses
    }


# 429 only when LEDGER_RATE_LIMIT is set; 503 when the database does not answer.
READ_PROBLEMS: Final = problem_responses(400, 401, 403, 429, 503)
JOB_READ_PROBLEMS: Final = problem_responses(400, 401, 403, 404, 410, 429, 503)
WRITE_PROBLEMS: Final = problem_responses(400, 401, 403, 404, 409, 410, 412, 413, 422, 429, 503)


# -- wiring ------------------------------------------------------------------------------


def _to_exception(error: Exception) -> ProblemDetailsException:
    problem = problem_of(error)
    return ProblemDetailsException(
        status_code=problem.status,
        type_=TYPE_BASE + problem.slug,
        title=problem.title,
        detail=problem.detail,
        extra=problem.extras,
        headers=problem.headers,
    )


def problem_plugin() -> ProblemDetailsPlugin:
    """Litestar's problem-details plugin, fed by `problem_of` for every error we know."""
    known: dict[type[Exception], Any] = {
        LedgerError: _to_exception,
        ApiError: _to_exception,
        HTTPException: _to_exception,
    }
    return ProblemDetailsPlugin(ProblemDetailsConfig(exception_to_problem_detail_map=known))


def internal_error(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    """The answer to an unexpected error: logged with the request id, no internals sent."""
    return failure(request.scope, error).response()


def failure(scope: Scope, error: Exception) -> Problem:
    """The problem an unexpected error is answered with, logged with the request id."""
    problem = problem_of(error)
    method, path, request_id = scope.get("method"), scope.get("path"), request_id_of(scope)
    if problem.status == 503:
        log.warning(
            "database unavailable in %s %s (request %s): %s", method, path, request_id, error
        )
    else:
        log.error(
            "unexpected error in %s %s (request %s)", method, path, request_id, exc_info=error
        )
    return problem
