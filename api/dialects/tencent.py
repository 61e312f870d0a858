"""Tencent Cloud CIAM `ListJobs`, API 3.0 version 2022-03-31 (seed 003).

`POST /` routed by `X-TC-Action`, signed with TC3-HMAC-SHA256 by a credential from
`ledger credentials create --dialect tencent`; `UserStoreId` is the ledger tenant.
Every answer is HTTP 200 with `Content-Type: application/json` exactly: the SDK reads
`Response.Error` only then, and raises on any other status.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from litestar import Request, Response, post
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from msgspec import Struct

from api.dialects.common import (
    DialectParts,
    decode,
    dialect_parts,
    documented_body,
    epoch_ms,
    missing_field,
)
from api.dialects.signing import parse_tc3, same_signature, tc3_signature
from api.request_id import request_id_of
from ledger.credentials import Dialect, Signer
from ledger.errors import InvalidCommand
from ledger.tokens import TENANT_PATTERN
from projections.rows import JobRow
from projections.search import MAX_LIMIT, Condition, JobSearch

log = logging.getLogger("api.dialects.tencent")

ACTION: Final = "ListJobs"
VERSION: Final = "2022-03-31"
SERVICE: Final = "ciam"
MAX_SKEW: Final = 300
"""Seconds X-TC-Timestamp may be off the server's clock."""
RATE_LIMIT: Final = 20
"""ListJobs' documented limit: requests per second per credential."""
MAX_JOB_IDS: Final = 100
STATUSES: Final = {
    "pending": "PENDING",
    "running": "PROCESSING",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "cancelled": "FAILED",
}
_TENANT: Final = re.compile(TENANT_PATTERN)
_encoder: Final = msgspec.json.Encoder()


class ListJobsRequest(Struct, rename="pascal", forbid_unknown_fields=True):
    user_store_id: str
    job_ids: list[str] | None = None
    """Empty or absent: every job of the user store."""


class ErrorDetail(Struct, rename="pascal"):
    user_id: str | None = None
    error: str | None = None


class FailedUser(Struct, rename="pascal"):
    failed_user_identification: str | None = None
    failed_reason: str | None = None


class Job(Struct, rename="pascal", omit_defaults=True):
    """CIAM's Job; Format, Location, ErrorDetails and FailedUsers come from the job's
    result, error details or parameters under those names."""

    id: str
    status: str
    type: str
    created_date: int
    format: str | None = None
    location: str | None = None
    error_details: list[ErrorDetail] | None = None
    failed_users: list[FailedUser] | None = None


class ListJobsResponse(Struct, rename="pascal"):
    job_set: list[Job]


class TencentJobSet(Struct, rename="pascal"):
    job_set: list[Job]
    request_id: str


class TencentApiError(Struct, rename="pascal"):
    code: str
    """`AuthFailure.*`, `InvalidAction`, `NoSuchVersion`, `MissingParameter`,
    `UnknownParameter`, `InvalidParameter`, `ResourceNotFound`, `RequestLimitExceeded` or
    `InternalError`."""
    message: str


class TencentErrorResult(Struct, rename="pascal"):
    error: TencentApiError
    request_id: str


@dataclass(frozen=True, slots=True)
class TencentAnswer:
    """Every answer: HTTP 200 with `{"Response": ...}`, the job set or the error (a
    dataclass: msgspec describes a union of Structs only when they are tagged)."""

    Response: TencentJobSet | TencentErrorResult


class TencentError(Exception):
    """An error answered as `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


# -- mapping --------------------------------------------------------------------------


def to_query(req: ListJobsRequest, tenant: str) -> JobSearch:
    """The ledger search for ListJobs: the store's jobs, or those listed, newest first."""
    if req.job_ids:
        if len(req.job_ids) > MAX_JOB_IDS:
            raise TencentError("InvalidParameter", f"JobIds takes at most {MAX_JOB_IDS} ids")
        return JobSearch(
            tenant=tenant, all_of=(Condition("id", "in", req.job_ids),), limit=MAX_JOB_IDS
        )
    return JobSearch(tenant=tenant, limit=MAX_LIMIT)


def _pick(row: JobRow, name: str) -> Any:
    for source in (row.result, row.error_details, row.parameters):
        if source and name in source:
            return source[name]
    return None


def _convert(value: Any, kind: type[Any]) -> Any:
    try:
        return None if value is None else msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return None  # a shape CIAM does not have is left out rather than half-shown


def to_job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        status=STATUSES.get(row.status, row.status.upper()),
        type=row.job_type,
        created_date=epoch_ms(row.created_at) or 0,
        format=_convert(_pick(row, "Format"), str),
        location=_convert(_pick(row, "Location"), str),
        error_details=_convert(_pick(row, "ErrorDetails"), list[ErrorDetail]),
        failed_users=_convert(_pick(row, "FailedUsers"), list[FailedUser]),
    )


def to_tencent(rows: list[JobRow]) -> ListJobsResponse:
    return ListJobsResponse(job_set=[to_job(row) for row in rows])


# -- authentication -------------------------------------------------------------------


async def authenticate(
    request: Request[Any, Any, Any], dialect: DialectParts, body: bytes
) -> Signer:
    """The credential that signed this request; TencentError(AuthFailure...) otherwise."""
    auth = parse_tc3(request.headers.get("authorization", ""))
    if auth is None:
        raise TencentError(
            "AuthFailure.InvalidAuthorization", "Authorization is not a TC3-HMAC-SHA256 header."
        )
    signer = await dialect.credentials.signer(Dialect.TENCENT, auth.secret_id)
    if signer is None:
        raise TencentError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
    raw_timestamp = request.headers.get("x-tc-timestamp", "")
    if not raw_timestamp.isdigit():
        raise TencentError("MissingParameter", "The X-TC-Timestamp header is missing.")
    timestamp = int(raw_timestamp)
    if abs(time.time() - timestamp) > MAX_SKEW:
        raise TencentError("AuthFailure.SignatureExpire", "The signature has expired.")
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    if auth.date != day or auth.service != SERVICE:
        raise TencentError(
            "AuthFailure.SignatureFailure",
            f"The credential scope must be {day}/{SERVICE}/tc3_request.",
        )
    expected = tc3_signature(
        auth,
        signer.secret,
        method=request.method,
        query=request.url.query,
        headers=request.headers,
        body=body,
        timestamp=raw_timestamp,
    )
    if not same_signature(expected, auth.signature):
        raise TencentError("AuthFailure.SignatureFailure", "The signature does not match.")
    return signer


async def _answer(request: Request[Any, Any, Any]) -> ListJobsResponse:
    dialect = dialect_parts(request)
    body = await request.body()
    signer = await authenticate(request, dialect, body)
    if not dialect.limiter("tencent", RATE_LIMIT).allow(signer.id):
        raise TencentError("RequestLimitExceeded", f"At most {RATE_LIMIT} requests per second.")
    action = request.headers.get("x-tc-action", "")
    if action != ACTION:
        raise TencentError("InvalidAction", f"The action {action!r} is not found.")
    version = request.headers.get("x-tc-version", "")
    if version != VERSION:
        raise TencentError("NoSuchVersion", f"The version {version!r} is not found.")
    try:
        req = decode(body, ListJobsRequest)
    except msgspec.ValidationError as exc:
        if missing_field(exc):
            raise TencentError("MissingParameter", str(exc)) from None
        if str(exc).startswith("Object contains unknown field"):
            raise TencentError("UnknownParameter", str(exc)) from None
        raise TencentError("InvalidParameter", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise TencentError("InvalidParameter", f"The body is not JSON: {exc}") from None
    if not _TENANT.match(req.user_store_id) or req.user_store_id != signer.tenant:
        raise TencentError("ResourceNotFound", f"UserStoreId {req.user_store_id} is not found.")
    page = await dialect.search.search(to_query(req, signer.tenant))
    if req.job_ids:
        missing = sorted(set(req.job_ids) - {row.id for row in page.jobs})
        if missing:
            raise TencentError("ResourceNotFound", f"Jobs not found: {', '.join(missing)}.")
    return to_tencent(page.jobs)


def _respond(request_id: str, content: dict[str, Any]) -> Response[bytes]:
    body = _encoder.encode({"Response": {**content, "RequestId": request_id}})
    return Response(body, status_code=200, media_type="application/json")


@post(
    "/",
    status_code=200,
    operation_id="tencent_ciam_api",
    tags=["Tencent Cloud CIAM"],
    dependencies=documented_body(ListJobsRequest),
    responses={
        200: ResponseSpec(
            TencentAnswer,
            description="`Response.JobSet`, or `Response.Error` for any refusal or failure",
            generate_examples=False,
        )
    },
)
async def tencent_api(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Tencent Cloud API 3.0 for CIAM: `X-TC-Action: ListJobs` (version 2022-03-31),
    signed with TC3-HMAC-SHA256. Body `{"UserStoreId", "JobIds"?}` ->
    `{"Response": {"JobSet": [...], "RequestId"}}`; errors are HTTP 200 with
    `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`."""
    request_id = request_id_of(request.scope)
    try:
        answer = await _answer(request)
    except TencentError as exc:
        return _respond(request_id, {"Error": {"Code": exc.code, "Message": str(exc)}})
    except InvalidCommand as exc:
        return _respond(request_id, {"Error": {"Code": "InvalidParameter", "Message": str(exc)}})
    except HTTPException as exc:
        error = {"Code": "InvalidParameter", "Message": exc.detail}
        if exc.status_code >= 500:
            error = {"Code": "InternalError", "Message": "An internal error occurred."}
        return _respond(request_id, {"Error": error})
    except Exception:
        log.exception("unexpected error (request %s)", request_id)
        return _respond(
            request_id,
            {"Error": {"Code": "InternalError", "Message": "An internal error occurred."}},
        )
    return _respond(request_id, msgspec.to_builtins(answer))
