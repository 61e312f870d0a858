"""Oracle Identity Governance scheduler "Create a new job" (seed 004).

`POST /iam/governance/selfservice/api/v1/scheduler/jobs[/]` with HTTP Basic auth (a user
from `ledger credentials create --dialect oracle`, whose tenant the job joins) and the
`X-Requested-By` header Jersey's CSRF guard asks of every POST. The job's `taskName` is
its type, `jobName` its name, and `retryCount` retries make `retryCount + 1` attempts;
`status: RUNNING` also starts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from typing import Annotated, Any, Final, Literal

import msgspec
from litestar import Request, Response, post
from litestar.concurrency import sync_to_thread
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from msgspec import Meta, Struct

from api.dialects.common import decode, dialect_parts, documented_body
from api.request_id import request_id_of
from ledger.commands import Context, NewJob, Start
from ledger.errors import InvalidCommand, JobAlreadyExists, LedgerError

log = logging.getLogger("api.dialects.oracle")

CREATED: Final = "Job Create successfull"
"""Oracle's own spelling, which its clients may compare against."""
MAX_ATTEMPTS: Final = 100
MAX_LABEL: Final = 256
_encoder: Final = msgspec.json.Encoder()

Scalar = str | int | float | bool


class JobParameter(Struct, rename="camel"):
    """One scheduler parameter. The schema sends a list of these (named), the document's
    example an object keyed by name whose values may be numbers."""

    value: Scalar | None = None
    name: str | None = None
    data_type: Literal["String", "Number", "Boolean", "ITResource"] | None = None
    help_text: str | None = None
    required: bool | None = None


class JobDetails(Struct, rename="camel", forbid_unknown_fields=True):
    job_name: Annotated[str, Meta(min_length=1, max_length=256)]
    task_name: Annotated[str, Meta(min_length=1, max_length=256)]
    retry_count: Annotated[int, Meta(ge=0, le=MAX_ATTEMPTS - 1)]
    parameters: list[JobParameter] | dict[str, JobParameter] | None = None
    concurrent: bool | None = None
    cron_schedule_type: str | None = None
    is_enabled: bool | None = None
    job_schedule_type: str | None = None
    notification: dict[str, Any] | None = None
    status: Literal["STOPPED", "RUNNING", "INTERRUPTED"] | None = None


class Success(Struct, rename="camel"):
    job_name: str
    status: str


class OracleErrorBody(Struct, rename="camel"):
    """An error: `{"errorCode": "<the HTTP status>", "errorMessage"}`."""

    error_code: str
    error_message: str


MEANINGS: Final = {
    400: "Invalid input: no X-Requested-By header, a body that is not JSON or not "
    "JobDetails, or a job of this jobName exists",
    401: "No HTTP Basic credentials, or a wrong username or password (with WWW-Authenticate)",
    413: "The body is over the size limit",
    500: "An unexpected error, or the database does not answer",
}
ERROR_RESPONSES: Final = {
    status: ResponseSpec(OracleErrorBody, description=meaning, generate_examples=False)
    for status, meaning in MEANINGS.items()
}


class OracleError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def invalid_input(reason: str) -> OracleError:
    return OracleError(400, f"Invalid input: {reason}")


def job_id_for(job_name: str) -> str:
    """The ledger id of a scheduler job: its name is its identity, so a second create of
    the same name within a tenant is refused, as the scheduler does."""
    return "oig-" + hashlib.sha256(job_name.encode()).hexdigest()[:24]


def to_new_job(details: JobDetails) -> NewJob:
    """The ledger's new job for a JobDetails; scheduler settings ride in its labels."""
    parameters: dict[str, Any] = {}
    if isinstance(details.parameters, dict):
        parameters = {name: p.value for name, p in details.parameters.items()}
    elif details.parameters is not None:
        for index, param in enumerate(details.parameters):
            parameters[param.name or str(index)] = param.value
    settings = {
        "concurrent": details.concurrent,
        "cronScheduleType": details.cron_schedule_type,
        "isEnabled": details.is_enabled,
        "jobScheduleType": details.job_schedule_type,
        "status": details.status,
        "notification": details.notification,
    }
    labels = {}
    for name, value in settings.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else _encoder.encode(value).decode()
        if len(text) > MAX_LABEL:
            raise invalid_input(f"{name} is longer than {MAX_LABEL} characters")
        labels[f"oig.{name}"] = text
    return NewJob(
        job_id=job_id_for(details.job_name),
        job_type=details.task_name,
        name=details.job_name,
        parameters=parameters,
        labels=labels,
        max_attempts=details.retry_count + 1,
    )


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(username, password) of an HTTP Basic `Authorization` header."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon and user else None


def error_response(error: OracleError) -> Response[bytes]:
    body = _encoder.encode({"errorCode": str(error.status), "errorMessage": str(error)})
    headers = {"WWW-Authenticate": 'Basic realm="OIG"'} if error.status == 401 else None
    return Response(body, status_code=error.status, media_type="application/json", headers=headers)


def _on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    match exc:
        case OracleError():
            return error_response(exc)
        case msgspec.ValidationError() | msgspec.DecodeError():
            return error_response(invalid_input(str(exc)))
        case JobAlreadyExists():
            return error_response(invalid_input("a job with this jobName already exists"))
        case InvalidCommand() | LedgerError():
            return error_response(invalid_input(str(exc)))
        case HTTPException() if exc.status_code < 500:
            return error_response(OracleError(exc.status_code, exc.detail))
    log.error("unexpected error (request %s)", request_id_of(request.scope), exc_info=exc)
    return error_response(OracleError(500, "Internal server error"))


@post(
    "/iam/governance/selfservice/api/v1/scheduler/jobs",
    status_code=200,
    tags=["Oracle Identity Governance"],
    responses=ERROR_RESPONSES,
    dependencies=documented_body(JobDetails),
    exception_handlers={Exception: _on_error, HTTPException: _on_error, LedgerError: _on_error},
)
async def create_scheduler_job(request: Request[Any, Any, Any]) -> Success:
    """Creates a new job in the scheduler with the provided details (JobDetails:
    jobName, taskName, retryCount required) -> `{"jobName", "status": "Job Create
    successfull"}`. HTTP Basic auth and an `X-Requested-By` header are required."""
    dialect = dialect_parts(request)
    sent = basic_credentials(request.headers.get("authorization", ""))
    tenant = None if sent is None else await dialect.credentials.password_user(*sent)
    if sent is None or tenant is None:
        raise OracleError(401, "Unauthorized: a valid username and password are required")
    if not request.headers.get("x-requested-by"):
        raise invalid_input("the X-Requested-By header is required")
    details = decode(await request.body(), JobDetails)
    new = to_new_job(details)
    ctx = Context(actor=sent[0], request_id=request_id_of(request.scope))
    ledger = dialect.parts.ledger
    await sync_to_thread(ledger.create_job, tenant, new, ctx)
    if details.status == "RUNNING":
        await sync_to_thread(ledger.record, tenant, new.job_id, Start(), ctx)
    return Success(job_name=details.job_name, status=CREATED)
