"""Huawei Cloud HSS "Obtaining Jobs" (ListTasks, seed 001).

`POST /v5/{project_id}/common/tasks/batch-query?enterprise_project_id=&offset=&limit=`;
`project_id` is the ledger tenant. Callers authenticate with the documented
`X-Auth-Token` (a ledger token) or, as `huaweicloudsdkhss` does, with an AK/SK
`SDK-HMAC-SHA256` signature from `ledger credentials create --dialect huawei`.
Errors are HTTP 4xx with `{"error_code", "error_msg"}` and an `X-Request-Id` header.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import msgspec
from litestar import Controller, Request, Response, post
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath
from msgspec import Struct

from api.dialects.common import (
    DialectParts,
    bearer_principal,
    decode,
    dialect_parts,
    documented_body,
    epoch_ms,
    from_epoch_ms,
)
from api.dialects.signing import huawei_signature, parse_huawei, same_signature
from api.request_id import request_id_of
from ledger.credentials import Dialect
from ledger.errors import InvalidCommand, LedgerError
from projections.conditions import Op
from projections.rows import JobRow
from projections.search import Condition, JobSearch, SortKey, minutes_left

log = logging.getLogger("api.dialects.huawei")

MAX_OFFSET: Final = 2_000_000
MIN_LIMIT: Final = 10
MAX_LIMIT: Final = 200
MAX_SKEW: Final = timedelta(minutes=15)
"""How far X-Sdk-Date may be off the server's clock (API Gateway's window)."""
ALL_PROJECTS: Final = "all_granted_eps"
TO_LEDGER: Final = {
    "ready": ("pending",),
    "running": ("running",),
    "finished": ("completed", "failed", "cancelled"),
}
FROM_LEDGER: Final = {status: name for name, statuses in TO_LEDGER.items() for status in statuses}
_encoder: Final = msgspec.json.Encoder()


# -- request and response bodies ------------------------------------------------------


class ClusterScanQuery(Struct, forbid_unknown_fields=True):
    scan_type_list: list[str] | None = None
    """Only the tasks that scan every one of these items."""


class IacScanQuery(Struct, forbid_unknown_fields=True):
    file_type: str | None = None


class ListTasksRequestBody(Struct, forbid_unknown_fields=True):
    task_type: str
    task_id: str | None = None
    task_name: str | None = None
    """A fuzzy (case-insensitive substring) match."""
    start_create_time: int | None = None
    end_create_time: int | None = None
    trigger_type: Literal["manual", "schedule"] | None = None
    task_status: Literal["ready", "running", "finished"] | None = None
    sort_key: Literal["start_time"] | None = None
    sort_dir: Literal["asc", "desc"] | None = None
    cluster_scan_info: ClusterScanQuery | None = None
    iac_scan_info: IacScanQuery | None = None


class ClusterScanInfo(Struct, omit_defaults=True):
    scan_type_list: list[str] | None = None
    scanning_cluster_num: int | None = None
    success_cluster_num: int | None = None
    failed_cluster_num: int | None = None


class IacScanInfo(Struct, omit_defaults=True):
    file_type: str | None = None
    scan_file_num: int | None = None
    success_file_num: int | None = None
    failed_file_num: int | None = None


class DataList(Struct, omit_defaults=True):
    task_id: str
    task_type: str
    task_name: str
    trigger_type: str
    task_status: str
    start_time: int | None = None
    end_time: int | None = None
    estimated_time: int | None = None
    cluster_scan_info: ClusterScanInfo | None = None
    iac_scan_info: IacScanInfo | None = None


class ListTasksResponse(Struct):
    total_num: int
    data_list: list[DataList]


class HuaweiErrorBody(Struct):
    """HSS's error, with the request id in the `X-Request-Id` header."""

    error_code: str
    """`HSS.xxxx`, or `APIGW.0301` for a refused authentication."""
    error_msg: str


MEANINGS: Final = {
    400: "A query parameter out of range, or a body that is not JSON or not "
    "ListTasksRequestBody (HSS.0001)",
    401: "No X-Auth-Token or signature, or an unknown, revoked or expired one (APIGW.0301)",
    403: "The caller's project is not `project_id` (HSS.0003)",
    413: "The body is over the size limit (HSS.0002)",
    500: "An unexpected error, or the database does not answer (HSS.0500)",
}
ERROR_RESPONSES: Final = {
    status: ResponseSpec(HuaweiErrorBody, description=meaning, generate_examples=False)
    for status, meaning in MEANINGS.items()
}


class HuaweiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


def bad_parameter(message: str) -> HuaweiError:
    return HuaweiError(400, "HSS.0001", f"Invalid parameter: {message}")


# -- mapping --------------------------------------------------------------------------


def to_query(
    body: ListTasksRequestBody, tenant: str, enterprise_project: str | None, offset: int, limit: int
) -> JobSearch:
    """The ledger search ListTasks asks for."""
    conditions = [Condition("job_type", "eq", body.task_type)]
    if body.task_id is not None:
        conditions.append(Condition("id", "eq", body.task_id))
    if body.task_name:
        conditions.append(Condition("name", "contains", body.task_name))
    bounds: tuple[tuple[str, Op], ...] = (("start_create_time", "gte"), ("end_create_time", "lte"))
    for name, op in bounds:
        millis = getattr(body, name)
        if millis is not None:
            moment = from_epoch_ms(millis)
            if moment is None:
                raise bad_parameter(f"{name} is out of range")
            conditions.append(Condition("created_at", op, moment))
    if body.trigger_type is not None:
        conditions.append(Condition("labels.trigger_type", "eq", body.trigger_type))
    if body.task_status is not None:
        conditions.append(Condition("status", "in", list(TO_LEDGER[body.task_status])))
    if body.cluster_scan_info and body.cluster_scan_info.scan_type_list:
        scans = body.cluster_scan_info.scan_type_list
        conditions.append(Condition("parameters.scan_type_list", "contains_all", scans))
    if body.iac_scan_info and body.iac_scan_info.file_type:
        conditions.append(Condition("parameters.file_type", "eq", body.iac_scan_info.file_type))
    if enterprise_project not in (None, ALL_PROJECTS, "0"):
        conditions.append(Condition("labels.enterprise_project_id", "eq", enterprise_project))
    sort = (SortKey("start_time", body.sort_dir != "asc"),) if body.sort_key else ()
    return JobSearch(
        tenant=tenant, all_of=tuple(conditions), sort=sort, offset=offset, limit=limit, total=True
    )


def _counter(row: JobRow, name: str) -> int | None:
    return row.counters.get(name)


def to_task(row: JobRow, now: datetime) -> DataList:
    """A job as a ListTasks entry; the scan details ride in its parameters and counters."""
    params = row.parameters
    cluster = iac = None
    if row.job_type == "cluster_scan":
        scans = params.get("scan_type_list")
        cluster = ClusterScanInfo(
            scan_type_list=scans if isinstance(scans, list) else None,
            scanning_cluster_num=_counter(row, "scanning_cluster_num"),
            success_cluster_num=_counter(row, "success_cluster_num"),
            failed_cluster_num=_counter(row, "failed_cluster_num"),
        )
    elif row.job_type == "iac_scan":
        file_type = params.get("file_type")
        iac = IacScanInfo(
            file_type=file_type if isinstance(file_type, str) else None,
            scan_file_num=_counter(row, "scan_file_num"),
            success_file_num=_counter(row, "success_file_num"),
            failed_file_num=_counter(row, "failed_file_num"),
        )
    return DataList(
        task_id=row.id,
        task_type=row.job_type,
        task_name=row.name or "",
        trigger_type=row.labels.get("trigger_type", "manual"),
        task_status=FROM_LEDGER.get(row.status, row.status),
        start_time=epoch_ms(row.start_time),
        end_time=epoch_ms(row.end_time),
        estimated_time=minutes_left(row, now),
        cluster_scan_info=cluster,
        iac_scan_info=iac,
    )


def to_huawei(rows: list[JobRow], total: int, now: datetime) -> ListTasksResponse:
    return ListTasksResponse(total_num=total, data_list=[to_task(row, now) for row in rows])


# -- authentication -------------------------------------------------------------------


def _unauthorized(reason: str) -> HuaweiError:
    return HuaweiError(401, "APIGW.0301", f"Incorrect IAM authentication information: {reason}")


async def tenant_of(request: Request[Any, Any, Any], dialect: DialectParts, body: bytes) -> str:
    """The tenant the caller acts for: its X-Auth-Token's, or its signing AK's."""
    if "x-auth-token" in request.headers:
        principal = await dialect.parts.tokens.verify(request.headers["x-auth-token"])
        if principal is None:
            raise _unauthorized("the token is unknown, malformed or revoked")
        return principal.tenant or request.path_params["project_id"]
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        principal = await bearer_principal(request, dialect.parts)
        if principal is None:
            raise _unauthorized("the token is unknown, malformed or revoked")
        return principal.tenant or request.path_params["project_id"]
    auth = parse_huawei(request.headers.get("authorization", ""))
    if auth is None:
        raise _unauthorized("send X-Auth-Token or an SDK-HMAC-SHA256 signature")
    signer = await dialect.credentials.signer(Dialect.HUAWEI, auth.access_key)
    if signer is None:
        raise _unauthorized("the access key is unknown or revoked")
    sdk_date = request.headers.get("x-sdk-date", "")
    try:
        signed_at = datetime.strptime(sdk_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _unauthorized("X-Sdk-Date is missing or malformed") from None
    if abs(datetime.now(UTC) - signed_at) > MAX_SKEW:
        raise _unauthorized("the signature has expired (X-Sdk-Date)")
    expected = huawei_signature(
        auth,
        signer.secret,
        method=request.method,
        path=request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
        query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=request.headers,
        body=body,
        sdk_date=sdk_date,
    )
    if not same_signature(expected, auth.signature):
        raise _unauthorized("verify aksk signature fail")
    return signer.tenant


def _int_param(
    request: Request[Any, Any, Any], name: str, low: int, high: int, default: int
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_parameter(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise bad_parameter(f"{name} must be between {low} and {high}")
    return value


# -- controller -----------------------------------------------------------------------


def error_response(request: Request[Any, Any, Any], error: HuaweiError) -> Response[bytes]:
    body = _encoder.encode({"error_code": error.code, "error_msg": str(error)})
    return Response(
        body,
        status_code=error.status,
        media_type="application/json",
        headers={"X-Request-Id": request_id_of(request.scope)},
    )


def _on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    match exc:
        case HuaweiError():
            return error_response(request, exc)
        case InvalidCommand():
            return error_response(request, bad_parameter(f"{exc.field}: {exc.reason}"))
        case msgspec.ValidationError() | msgspec.DecodeError():
            return error_response(request, bad_parameter(str(exc)))
        case HTTPException() if exc.status_code < 500:
            return error_response(request, HuaweiError(exc.status_code, "HSS.0002", exc.detail))
    log.error("unexpected error (request %s)", request_id_of(request.scope), exc_info=exc)
    return error_response(request, HuaweiError(500, "HSS.0500", "Internal server error."))


class HuaweiTasks(Controller):
    """Huawei Cloud HSS task list."""

    path = "/v5/{project_id:str}/common/tasks"
    tags = ["Huawei Cloud HSS"]  # noqa: RUF012
    # LedgerError too: the app's own handler for it (problem+json) would come first.
    exception_handlers = {Exception: _on_error, HTTPException: _on_error, LedgerError: _on_error}  # noqa: RUF012

    @post(
        "/batch-query",
        status_code=200,
        responses=ERROR_RESPONSES,
        dependencies=documented_body(ListTasksRequestBody),
    )
    async def list_tasks(
        self, request: Request[Any, Any, Any], project_id: FromPath[str]
    ) -> ListTasksResponse:
        """Obtaining Jobs: the project's tasks of one `task_type`, filtered and paged
        (offset 0-2,000,000; limit 10-200, default 10) -> `{total_num, data_list}`."""
        dialect = dialect_parts(request)
        body = await request.body()
        tenant = await tenant_of(request, dialect, body)
        if tenant != project_id:
            raise HuaweiError(403, "HSS.0003", f"No permission for project {project_id}.")
        offset = _int_param(request, "offset", 0, MAX_OFFSET, 0)
        limit = _int_param(request, "limit", MIN_LIMIT, MAX_LIMIT, MIN_LIMIT)
        req = decode(body, ListTasksRequestBody)
        enterprise_project = request.query_params.get("enterprise_project_id")
        page = await dialect.search.search(to_query(req, tenant, enterprise_project, offset, limit))
        assert page.total is not None
        return to_huawei(page.jobs, page.total, datetime.now(UTC))
