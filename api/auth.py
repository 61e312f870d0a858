"""Who is calling: bearer tokens checked on each request, roles, and the tenant meant."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final

from litestar import Request
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.params import QueryParameter

from api.parts import parts_of
from api.problems import BadField, WrongTenant
from api.ratelimit import limit_rate
from api.request_id import request_id_of
from api.schemas import ID_PATTERN, TENANT_PATTERN
from ledger.commands import Context
from ledger.errors import JobNotFound
from ledger.tokens import Principal, Role

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

WRITERS: Final = frozenset({Role.ADMIN, Role.WRITER})
GLOBAL_SCOPE: Final = "*"
"""The idempotency-key scope of global tokens (no tenant is spelled `*`)."""
PRINCIPAL_STATE: Final = "ledger_principal"
JOB_ID: Final = re.compile(ID_PATTERN)
"""What a job id can be: any other is no job's."""
_BEARER: Final = re.compile(r"^Bearer +(?P<token>\S+) *$", re.IGNORECASE)


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header's value, if it is one."""
    match = _BEARER.match(header)
    return None if match is None else match["token"]


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The principal of the request's bearer token; 401 without a valid, live token."""
    # The scope's own dict: `connection.state` wraps it in a new State at each access.
    state = connection.scope["state"]
    known = state.get(PRINCIPAL_STATE)
    if isinstance(known, Principal):
        return known
    header = connection.headers.get("authorization")
    if header is None:
        raise NotAuthorizedException("an Authorization: Bearer <token> header is required")
    principal = None
    if (token := bearer_token(header)) is not None:
        principal = await parts_of(connection.app.state).tokens.verify(token)
    if principal is None:
        raise NotAuthorizedException("the bearer token is unknown, malformed or revoked")
    state[PRINCIPAL_STATE] = principal
    limit_rate(connection, principal.token_id)
    return principal


async def may_read(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: any valid token (every role reads its tenant's jobs and stats)."""
    await authenticate(connection)


async def may_write(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a writer or admin token; other roles get 403."""
    principal = await authenticate(connection)
    if principal.role not in WRITERS:
        raise PermissionDeniedException(f"a {principal.role} token may not write; writer or admin")


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The principal a guard has already authenticated."""
    principal = connection.scope["state"].get(PRINCIPAL_STATE)
    assert isinstance(principal, Principal), "route without an auth guard"
    return principal


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller, the tenant it names (`tenant=`), and the request id."""

    principal: Principal
    named_tenant: str | None
    request_id: str

    @property
    def context(self) -> Context:
        """Who writes: recorded on every event."""
        return Context(actor=self.principal.token_id, request_id=self.request_id)

    @property
    def key_scope(self) -> str:
        return self.principal.tenant or GLOBAL_SCOPE

    def tenant_for_job(self, job_id: str) -> str:
        """The tenant whose job `job_id` is meant; another tenant's job is simply not found
        (and so is an id no job can have)."""
        if not JOB_ID.match(job_id):
            raise JobNotFound(job_id)
        own = self.principal.tenant
        if own is None:
            if self.named_tenant is None:
                raise BadField("tenant", "a global token must name the job's tenant (?tenant=)")
            return self.named_tenant
        if self.named_tenant not in (None, own):
            raise JobNotFound(job_id)
        return own

    def tenant_filter(self) -> str | None:
        """The tenant a list or stats covers: the token's own, or for a global token the
        one named (None: every tenant)."""
        own = self.principal.tenant
        if own is None:
            return self.named_tenant
        if self.named_tenant not in (None, own):
            raise WrongTenant(own)
        return own

    def tenant_for_create(self, in_body: str | None) -> str:
        """The tenant a new job belongs to; a global token must name it."""
        own = self.principal.tenant
        named = in_body if in_body is not None else self.named_tenant
        if own is None:
            if named is None:
                raise BadField("tenant", "a global token must name the new job's tenant")
            return named
        if named not in (None, own):
            raise WrongTenant(own)
        return own

    def tenant_for_batch(self) -> str:
        own = self.principal.tenant
        if own is None:
            if self.named_tenant is None:
                raise BadField("tenant", "a global token must name the tenant (?tenant=)")
            return self.named_tenant
        if self.named_tenant not in (None, own):
            raise WrongTenant(own)
        return own


TenantParam = Annotated[
    str | None,
    QueryParameter(
        pattern=TENANT_PATTERN,
        description="The tenant meant; global admin tokens only (others may name their own).",
    ),
]


async def provide_caller(request: Request[Any, Any, Any], tenant: TenantParam = None) -> Caller:
    """Dependency: the caller of this request."""
    return Caller(principal_of(request), tenant, request_id_of(request.scope))
