"""SpaceONE / Cloudforet identity v2 `Job` (seed 000): get, list, stat and delete.

Served at `/identity/v2/job/<verb>` and at `/identity/job/<verb>` (the console REST
gateway's form), with `Authorization: Bearer <ledger token>`; the token's tenant is the
`domain_id`. JSON follows the proto mapping: snake_case names, enum names, fields at their
default left out. Errors are the gateway's `{"detail": {"code", "message"}}`.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import msgspec
from litestar import Controller, Request, Response, post
from litestar.concurrency import sync_to_thread
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from msgspec import UNSET, Struct, UnsetType

from api.dialects.common import (
    DialectParts,
    bearer_principal,
    decode,
    dialect_parts,
    documented_body,
    iso_ms,
    missing_field,
)
from api.request_id import request_id_of
from ledger.commands import Context, Delete
from ledger.errors import InvalidCommand, JobGone, JobNotFound, LedgerError
from ledger.tokens import Principal, Role
from projections.rows import JobRow
from projections.search import (
    MAX_LIMIT,
    Aggregate,
    Condition,
    CountStage,
    Group,
    GroupKey,
    JobAggregation,
    JobSearch,
    LimitStage,
    ProjectStage,
    SkipStage,
    SortKey,
    SortStage,
    Stage,
)

log = logging.getLogger("api.dialects.spaceone")

JobStatus = Literal["PENDING", "IN_PROGRESS", "SUCCESS", "FAILURE", "CANCELED"]
TO_LEDGER: Final[dict[str, str]] = {
    "PENDING": "pending", "IN_PROGRESS": "running", "SUCCESS": "completed",
    "FAILURE": "failed", "CANCELED": "cancelled",
}  # fmt: skip
FROM_LEDGER: Final = {ledger: vendor for vendor, ledger in TO_LEDGER.items()}
# JobInfo's fields and where the ledger keeps them; a filter on anything else is refused.
FIELDS: Final[dict[str, str]] = {
    "job_id": "id", "status": "status", "error_message": "error_message",
    "domain_id": "tenant", "resource_group": "labels.resource_group",
    "workspace_id": "labels.workspace_id", "trusted_account_id": "labels.trusted_account_id",
    "plugin_id": "labels.plugin_id", "created_at": "created_at", "updated_at": "updated_at",
    "finished_at": "end_time",
}  # fmt: skip
OPERATORS: Final[dict[str, str]] = {
    "lt": "lt", "lte": "lte", "gt": "gt", "gte": "gte", "eq": "eq", "not": "ne",
    "exists": "exists", "contain": "contains", "not_contain": "not_contains", "in": "in",
    "not_in": "not_in", "contain_in": "contains_any", "not_contain_in": "not_contains_any",
    "match": "contains_all", "regex": "regex", "regex_in": "regex_any",
    "datetime_lt": "lt", "datetime_lte": "lte", "datetime_gt": "gt", "datetime_gte": "gte",
    "timediff_lt": "lt", "timediff_lte": "lte", "timediff_gt": "gt", "timediff_gte": "gte",
}  # fmt: skip
_TIMEDIFF: Final = re.compile(r"^now(?:\s*(?P<sign>[+-])\s*(?P<n>\d+)(?P<unit>[smhdw]))?$")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_encoder: Final = msgspec.json.Encoder()


# -- requests -------------------------------------------------------------------------


class Filter(Struct, forbid_unknown_fields=True):
    """core.v2 Query filter; `k`/`v`/`o` are the short spellings of key/value/operator."""

    key: str | UnsetType = UNSET
    k: str | UnsetType = UNSET
    value: Any = UNSET
    v: Any = UNSET
    operator: str | UnsetType = UNSET
    o: str | UnsetType = UNSET


class Sort(Struct, forbid_unknown_fields=True):
    key: str
    desc: bool = False


class Page(Struct, forbid_unknown_fields=True):
    start: int = 1
    """1-based; values below 1 read as 1."""
    limit: int = 0
    """0: no paging."""


class Query(Struct, forbid_unknown_fields=True):
    filter: list[Filter] = []
    filter_or: list[Filter] = []
    sort: list[Sort] | Sort | None = None
    page: Page | None = None
    minimal: bool = False
    count_only: bool = False
    only: list[str] = []
    keyword: str | None = None


class JobRequest(Struct, forbid_unknown_fields=True):
    job_id: str
    domain_id: str | UnsetType = UNSET
    """Global admin tokens name the domain; others act in their own."""


class JobsQuery(Struct, forbid_unknown_fields=True):
    query: Query | None = None
    job_id: str | UnsetType = UNSET
    status: JobStatus | UnsetType = UNSET
    workspace_id: str | UnsetType = UNSET
    trusted_account_id: str | UnsetType = UNSET
    plugin_id: str | UnsetType = UNSET
    domain_id: str | UnsetType = UNSET


class StatKey(Struct, forbid_unknown_fields=True):
    key: str | UnsetType = UNSET
    k: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    n: str | UnsetType = UNSET
    operator: str | UnsetType = UNSET
    o: str | UnsetType = UNSET
    date_format: str | None = None


class StatGroup(Struct, forbid_unknown_fields=True):
    keys: list[StatKey] = []
    fields: list[StatKey] = []


class StatName(Struct, forbid_unknown_fields=True):
    name: str


class StatSort(Struct, forbid_unknown_fields=True):
    key: str | UnsetType = UNSET
    desc: bool = False
    keys: list[Sort] = []


class StatProject(Struct, forbid_unknown_fields=True):
    fields: list[StatKey] = []


class StatStage(Struct, forbid_unknown_fields=True):
    """One aggregate stage: exactly one of its members."""

    group: StatGroup | None = None
    count: StatName | None = None
    sort: StatSort | list[Sort] | None = None
    limit: int | None = None
    skip: int | None = None
    project: StatProject | None = None


class StatisticsQuery(Struct, forbid_unknown_fields=True):
    filter: list[Filter] = []
    filter_or: list[Filter] = []
    aggregate: list[StatStage] = []
    distinct: str | None = None
    page: Page | None = None
    keyword: str | None = None


class JobStatQuery(Struct, forbid_unknown_fields=True):
    query: StatisticsQuery
    domain_id: str | UnsetType = UNSET


# -- responses ------------------------------------------------------------------------


class JobInfo(Struct, omit_defaults=True):
    """A job as identity v2 shows it; fields at their default are left out, as proto does."""

    job_id: str
    status: str
    resource_group: str
    options: dict[str, Any] = {}
    error_message: str = ""
    domain_id: str = ""
    workspace_id: str = ""
    trusted_account_id: str = ""
    plugin_id: str = ""
    created_at: str = ""
    updated_at: str = ""
    finished_at: str = ""


class JobsInfo(Struct):
    results: list[dict[str, Any]]
    total_count: int


class Empty(Struct):
    """`google.protobuf.Empty`: `{}`."""


class SpaceOneErrorDetail(Struct):
    code: str
    """`ERROR_...`, as identity names its errors."""
    message: str


class SpaceOneErrorBody(Struct):
    """The REST gateway's error: `{"detail": {"code", "message"}}`."""

    detail: SpaceOneErrorDetail


MEANINGS: Final = {
    400: "A body that is not JSON or not this request's shape, a required field missing, "
    "or a filter, key or operator refused",
    401: "No bearer token, or an unknown, malformed or revoked one",
    403: "The token's role or domain does not allow this",
    404: "No such job in the domain (or it was deleted)",
    409: "The job's state does not allow this",
    413: "The body is over the size limit",
    500: "An unexpected error, or the database does not answer",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors an operation may answer with."""
    return {
        status: ResponseSpec(
            SpaceOneErrorBody, description=MEANINGS[status], generate_examples=False
        )
        for status in statuses
    }


class SpaceOneError(Exception):
    """An error answered as `{"detail": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


def invalid(message: str) -> SpaceOneError:
    return SpaceOneError(400, "ERROR_INVALID_ARGUMENT", message)


# -- mapping --------------------------------------------------------------------------


def to_job_info(row: JobRow) -> JobInfo:
    """The JobInfo of a job's row (identity's fields ride in its labels)."""
    labels = row.labels
    return JobInfo(
        job_id=row.id,
        status=FROM_LEDGER.get(row.status, row.status.upper()),
        options=row.parameters,
        resource_group=labels.get("resource_group", "DOMAIN"),
        error_message=row.error_message or "",
        domain_id=row.tenant,
        workspace_id=labels.get("workspace_id", ""),
        trusted_account_id=labels.get("trusted_account_id", ""),
        plugin_id=labels.get("plugin_id", ""),
        created_at=iso_ms(row.created_at),
        updated_at=iso_ms(row.updated_at),
        finished_at=iso_ms(row.end_time),
    )


def field_of(key: str) -> str:
    """The ledger field of a JobInfo key (`options.x` is parameter x)."""
    if key in FIELDS:
        return FIELDS[key]
    if key.startswith("options.") and len(key) > len("options."):
        return "parameters." + key.removeprefix("options.")
    raise invalid(f"Query key is not allowed. (key = {key})")


def _status_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_status_value(v) for v in value]
    if value not in TO_LEDGER:
        raise invalid(f"Invalid status. (status = {value}, allowed = {', '.join(TO_LEDGER)})")
    return TO_LEDGER[value]


def _timediff(value: Any) -> datetime:
    match = _TIMEDIFF.match(value) if isinstance(value, str) else None
    if match is None:
        raise invalid(f"Invalid timediff value. (value = {value}, e.g. now-5d)")
    moment = datetime.now(UTC)
    if match["n"]:
        try:
            delta = timedelta(**{_UNITS[match["unit"]]: int(match["n"])})
            moment = moment + delta if match["sign"] == "+" else moment - delta
        except OverflowError:
            raise invalid(f"Invalid timediff value. (value = {value})") from None
    return moment


def to_condition(item: Filter) -> Condition:
    """A core.v2 filter as a ledger search condition."""
    key = item.key if item.key is not UNSET else item.k
    value = item.value if item.value is not UNSET else item.v
    operator = item.operator if item.operator is not UNSET else item.o
    if key is UNSET or isinstance(key, UnsetType):
        raise SpaceOneError(400, "ERROR_REQUIRED_PARAMETER", "Required parameter. (key = key)")
    if value is UNSET:
        raise SpaceOneError(400, "ERROR_REQUIRED_PARAMETER", "Required parameter. (key = value)")
    op = "eq" if isinstance(operator, UnsetType) else operator
    if op not in OPERATORS:
        raise invalid(f"Filter operator is not supported. (operator = {op})")
    field = field_of(key)
    if op.startswith("timediff_"):
        value = _timediff(value)
    elif field == "status" and op in ("eq", "not", "in", "not_in"):
        value = _status_value(value)
    return Condition(field, OPERATORS[op], value)  # type: ignore[arg-type]


def _page(page: Page | None) -> tuple[int, int | None]:
    if page is None or page.limit <= 0:
        return 0, None
    return (max(page.start, 1) - 1), min(page.limit, MAX_LIMIT)


def to_search(req: JobsQuery, tenant: str | None) -> JobSearch:
    """The ledger search a JobsQuery asks for; its shortcut fields are equality filters."""
    query = req.query or Query()
    conditions = [to_condition(f) for f in query.filter]
    for key in ("job_id", "status", "workspace_id", "trusted_account_id", "plugin_id"):
        value = getattr(req, key)
        if value is not UNSET:
            conditions.append(to_condition(Filter(key=key, value=value)))
    sorts = query.sort if isinstance(query.sort, list) else [query.sort] if query.sort else []
    offset, limit = _page(query.page)
    return JobSearch(
        tenant=tenant,
        all_of=tuple(conditions),
        any_of=tuple(to_condition(f) for f in query.filter_or),
        keyword=query.keyword or None,
        sort=tuple(SortKey(field_of(s.key), s.desc) for s in sorts),
        offset=offset,
        limit=limit or MAX_LIMIT,
        rows=not query.count_only,
        total=True,
    )


def to_jobs_info(rows: list[JobRow], total: int, only: list[str]) -> JobsInfo:
    results = [msgspec.to_builtins(to_job_info(row)) for row in rows]
    if only:
        results = [{k: v for k, v in r.items() if k in only} for r in results]
    return JobsInfo(results=results, total_count=total)


def _stat_key(item: StatKey, *, named: bool = True) -> tuple[str, str]:
    key = item.key if item.key is not UNSET else item.k
    name = item.name if item.name is not UNSET else item.n
    if isinstance(key, UnsetType):
        key = ""
    if isinstance(name, UnsetType):
        if named:
            raise SpaceOneError(400, "ERROR_REQUIRED_PARAMETER", "Required parameter. (key = name)")
        name = key
    return key, name


def _to_stage(stage: StatStage) -> Stage:
    members = [m for m in StatStage.__struct_fields__ if getattr(stage, m) is not None]
    if len(members) != 1:
        raise invalid("Each aggregate stage needs exactly one of group, count, sort, ...")
    if stage.group is not None:
        keys = []
        for item in stage.group.keys:
            key, name = _stat_key(item)
            keys.append(GroupKey(field_of(key), name, item.date_format))
        fields = []
        for item in stage.group.fields:
            key, name = _stat_key(item)
            op = item.operator if item.operator is not UNSET else item.o
            if op not in ("count", "sum", "average", "max", "min"):
                raise invalid(f"Group operator is not supported. (operator = {op})")
            fields.append(Aggregate(op, name, field_of(key) if key else None))  # type: ignore[arg-type]
        return Group(tuple(keys), tuple(fields))
    if stage.count is not None:
        return CountStage(stage.count.name)
    if stage.sort is not None:
        if isinstance(stage.sort, list):
            sorts = stage.sort
        else:
            sorts = stage.sort.keys or [Sort(key=str(stage.sort.key), desc=stage.sort.desc)]
        return SortStage(tuple(SortKey(s.key, s.desc) for s in sorts))
    if stage.limit is not None:
        return LimitStage(stage.limit)
    if stage.skip is not None:
        return SkipStage(stage.skip)
    assert stage.project is not None
    return ProjectStage(tuple(_stat_key(f, named=False) for f in stage.project.fields))


def to_aggregation(req: JobStatQuery, tenant: str | None) -> tuple[JobAggregation, set[str]]:
    """The ledger aggregation a StatisticsQuery asks for, and the result names that hold
    statuses (to be shown as identity's status names)."""
    query = req.query
    if not query.aggregate and not query.distinct:
        raise SpaceOneError(
            400, "ERROR_REQUIRED_PARAMETER", "Required parameter. (key = aggregate or distinct)"
        )
    stages = tuple(_to_stage(s) for s in query.aggregate)
    status_names = {
        k.name for s in stages if isinstance(s, Group) for k in s.keys if k.field == "status"
    }
    offset, limit = _page(query.page)
    aggregation = JobAggregation(
        tenant=tenant,
        all_of=tuple(to_condition(f) for f in query.filter),
        any_of=tuple(to_condition(f) for f in query.filter_or),
        keyword=query.keyword or None,
        stages=stages,
        distinct=field_of(query.distinct) if query.distinct else None,
        offset=offset,
        limit=limit,
    )
    return aggregation, status_names


def _vendor_statuses(results: list[object], names: set[str], distinct: bool) -> list[object]:
    if distinct:
        return [FROM_LEDGER.get(v, v) if isinstance(v, str) else v for v in results]
    for row in results:
        if isinstance(row, dict):
            for name in names & row.keys():
                row[name] = FROM_LEDGER.get(row[name], row[name])
    return results


# -- controller -----------------------------------------------------------------------


def error_response(error: SpaceOneError) -> Response[bytes]:
    body = {"detail": {"code": error.code, "message": str(error)}}
    return Response(_encoder.encode(body), status_code=error.status, media_type="application/json")


def _on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    match exc:
        case SpaceOneError():
            return error_response(exc)
        case JobNotFound() | JobGone():
            return error_response(
                SpaceOneError(
                    404, "ERROR_NOT_FOUND", f"Resource not found. (job_id = {exc.job_id})"
                )
            )
        case InvalidCommand():
            return error_response(invalid(f"Invalid parameter. ({exc.field}: {exc.reason})"))
        case msgspec.ValidationError() if missing_field(exc):
            return error_response(SpaceOneError(400, "ERROR_REQUIRED_PARAMETER", str(exc)))
        case msgspec.DecodeError():
            return error_response(invalid(f"Invalid request body: {exc}"))
        case LedgerError():
            return error_response(SpaceOneError(409, "ERROR_INVALID_STATE", str(exc)))
        case HTTPException() if exc.status_code < 500:
            return error_response(SpaceOneError(exc.status_code, "ERROR_REQUEST", exc.detail))
    log.error("unexpected error (request %s)", request_id_of(request.scope), exc_info=exc)
    return error_response(SpaceOneError(500, "ERROR_UNKNOWN", "Internal error."))


async def _caller(request: Request[Any, Any, Any]) -> tuple[DialectParts, Principal]:
    dialect = dialect_parts(request)
    principal = await bearer_principal(request, dialect.parts)
    if principal is None:
        raise SpaceOneError(401, "ERROR_AUTHENTICATE_FAILURE", "Authenticate failure. (token)")
    return dialect, principal


def _tenant(principal: Principal, domain_id: str | UnsetType, *, required: bool) -> str | None:
    """The domain meant: the token's own; a global admin names it (or means every one)."""
    named = None if isinstance(domain_id, UnsetType) else domain_id
    if principal.tenant is None:
        if named is None and required:
            raise SpaceOneError(
                400, "ERROR_REQUIRED_PARAMETER", "Required parameter. (key = domain_id)"
            )
        return named
    if named not in (None, principal.tenant):
        raise SpaceOneError(
            403, "ERROR_PERMISSION_DENIED", f"Permission denied. (domain_id = {named})"
        )
    return principal.tenant


class SpaceOneJobs(Controller):
    """SpaceONE identity v2 Job API."""

    path = "/identity"
    tags = ["SpaceONE identity v2"]  # noqa: RUF012
    exception_handlers = {Exception: _on_error, HTTPException: _on_error, LedgerError: _on_error}  # noqa: RUF012

    @post(
        ["/v2/job/get", "/job/get"],
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 413, 500),
        dependencies=documented_body(JobRequest),
    )
    async def get_job(self, request: Request[Any, Any, Any]) -> JobInfo:
        """Gets a specific Job (`{"job_id"}`) -> JobInfo."""
        dialect, principal = await _caller(request)
        req = decode(await request.body(), JobRequest)
        tenant = _tenant(principal, req.domain_id, required=True)
        assert tenant is not None
        return to_job_info(await dialect.parts.queries.get_job(tenant, req.job_id))

    @post(
        ["/v2/job/list", "/job/list"],
        status_code=200,
        responses=error_responses(400, 401, 403, 413, 500),
        dependencies=documented_body(JobsQuery),
    )
    async def list_jobs(self, request: Request[Any, Any, Any]) -> JobsInfo:
        """Lists Jobs matching a core.v2 Query and the shortcut fields -> results, total_count."""
        dialect, principal = await _caller(request)
        req = decode(await request.body(), JobsQuery)
        search = to_search(req, _tenant(principal, req.domain_id, required=False))
        page = await dialect.search.search(search)
        assert page.total is not None
        return to_jobs_info(page.jobs, page.total, (req.query or Query()).only)

    @post(
        ["/v2/job/stat", "/job/stat"],
        status_code=200,
        responses=error_responses(400, 401, 403, 413, 500),
        dependencies=documented_body(JobStatQuery),
    )
    async def stat_jobs(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Statistics of Jobs (a StatisticsQuery's aggregate stages or distinct), in SQL."""
        dialect, principal = await _caller(request)
        req = decode(await request.body(), JobStatQuery)
        aggregation, status_names = to_aggregation(
            req, _tenant(principal, req.domain_id, required=False)
        )
        found = await dialect.search.aggregate(aggregation)
        results = _vendor_statuses(found.results, status_names, aggregation.distinct == "status")
        answer: dict[str, Any] = {"results": results}
        if found.total is not None:
            answer["total_count"] = found.total
        return answer

    @post(
        ["/v2/job/delete", "/job/delete"],
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 409, 413, 500),
        dependencies=documented_body(JobRequest),
    )
    async def delete_job(self, request: Request[Any, Any, Any]) -> Empty:
        """Deletes a specific Job: a Deleted event is appended; its history is kept."""
        dialect, principal = await _caller(request)
        if principal.role not in (Role.ADMIN, Role.WRITER):
            raise SpaceOneError(403, "ERROR_PERMISSION_DENIED", "Permission denied. (role)")
        req = decode(await request.body(), JobRequest)
        tenant = _tenant(principal, req.domain_id, required=True)
        assert tenant is not None
        if "\x00" in tenant or "\x00" in req.job_id:
            # PostgreSQL text cannot hold U+0000 (the event store would refuse): no such job.
            raise JobNotFound(req.job_id)
        ctx = Context(actor=principal.token_id, request_id=request_id_of(request.scope))
        await sync_to_thread(dialect.parts.ledger.record, tenant, req.job_id, Delete(), ctx)
        return Empty()
