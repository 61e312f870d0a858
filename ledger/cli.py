"""The `ledger` command: serve, migrate, run the projections, manage API tokens."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, TextIO

import psycopg

from ledger import audit
from ledger.errors import ConfigurationError, InvalidCommand, LedgerError
from ledger.logs import configure_logging
from ledger.server import Shutdown, describe_database, shutdown_on_signals
from ledger.settings import Settings
from ledger.tokens import Role, TokenInfo, TokenStore

if TYPE_CHECKING:
    from ledger.credentials import CredentialStore

GLOBAL: Final = "*"
"""How a global token's tenant is shown."""

EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2  # argparse's own status for a bad command line

Command = Callable[[argparse.Namespace, Settings, TextIO], int]


class UsageError(Exception):
    """The command line parses but asks for something that makes no sense."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ledger` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command is _serve:
            settings = replace(
                settings,
                host=args.host or settings.host,
                port=args.port or settings.port,
                workers=args.workers or settings.workers,
            )
        configure_logging(settings, quiet=not args.long_running)
    except ConfigurationError as exc:
        return _fail(parser, str(exc), EXIT_USAGE)
    command: Command = args.command
    try:
        with shutdown_on_signals():
            return command(args, settings, sys.stdout)
    except (ConfigurationError, UsageError) as exc:
        return _fail(parser, str(exc), EXIT_USAGE)
    except psycopg.OperationalError as exc:
        where = describe_database(settings)
        return _fail(parser, f"cannot use the database ({where}): {exc}".strip(), EXIT_FAILURE)
    except LedgerError as exc:
        return _fail(parser, str(exc), EXIT_FAILURE)
    except Shutdown as stop:
        # Stopping is how a server ends well; a one-shot command was cut short.
        return 0 if args.long_running else 128 + stop.signum
    except KeyboardInterrupt:
        return 0 if args.long_running else 128 + signal.SIGINT


def build_parser() -> argparse.ArgumentParser:
    """The command line, with one sub-command per task."""
    parser = argparse.ArgumentParser(
        prog="ledger",
        description="Job Ledger: an event-sourced ledger of job transitions. "
        "Without LEDGER_DATABASE_URL every command uses the embedded PostgreSQL "
        "in LEDGER_DATA_DIR (default ./.ledger).",
    )
    parser.set_defaults(long_running=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve", help="serve the API and run the projections (applies the schema first)"
    )
    serve.add_argument("--host", help="address to listen on (default: LEDGER_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default: LEDGER_PORT, 8000)")
    serve.add_argument(
        "--workers",
        type=_workers,
        help="processes that answer requests (default: LEDGER_WORKERS, 1)",
    )
    serve.set_defaults(command=_serve, long_running=True)

    migrate = commands.add_parser("migrate", help="apply the schema, idempotently")
    migrate.set_defaults(command=_migrate)

    config = commands.add_parser("config", help="print the settings in force, secrets masked")
    config.set_defaults(command=_config)

    projections = commands.add_parser("projections", help="the read-model projections")
    projection_commands = projections.add_subparsers(metavar="COMMAND", required=True)
    run = projection_commands.add_parser("run", help="run the projections until interrupted")
    run.set_defaults(command=_run_projections, long_running=True)
    audit.add_projection_commands(projection_commands)

    tokens = commands.add_parser("tokens", help="API bearer tokens")
    token_commands = tokens.add_subparsers(metavar="COMMAND", required=True)
    create = token_commands.add_parser(
        "create", help="create a token and print it, once, on the last line"
    )
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--tenant", help="the tenant the token belongs to")
    owner.add_argument(
        "--global",
        dest="global_",
        action="store_true",
        help="a token of no tenant, for every tenant (admin role only)",
    )
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--label", help="a note for people, shown by `tokens list`")
    create.set_defaults(command=_create_token)
    listing = token_commands.add_parser("list", help="list tokens (never their secrets)")
    listing.set_defaults(command=_list_tokens)
    revoke = token_commands.add_parser(
        "revoke", help="revoke a token: refused from the next request on (takes a second)"
    )
    revoke.add_argument("id", help="the token's id, as `tokens create` printed it")
    revoke.set_defaults(command=_revoke_token)

    _add_credential_commands(commands)
    audit.add_commands(commands)
    return parser


# -- commands ---------------------------------------------------------------------


def _serve(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from ledger.server import serve

    serve(settings, out)
    return 0


def _config(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from ledger.effective_settings import effective_settings, render

    print(render(effective_settings(settings)), file=out)
    return 0


def _migrate(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from ledger.migrate import migrate
    from ledger.server import open_database

    ready = open_database(settings, apply_schema=False)
    applied = migrate(ready)
    print(f"schema up to date on {describe_database(settings)}", file=out)
    for name in applied:
        print(f"  {name}", file=out)
    return 0


def _run_projections(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from ledger.server import run_projections

    run_projections(settings, out)
    return 0


def _create_token(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.global_ and args.role != "admin":
        raise UsageError("--global needs --role admin: only an admin token may be global")
    tenant: str | None = None if args.global_ else args.tenant
    try:
        token_id, token = _token_store(settings).create(tenant, args.role, args.label)
    except InvalidCommand as exc:
        raise UsageError(f"--{exc.field}: {exc.reason}") from None
    out.write(format_created(token_id, tenant, args.role, token))
    return 0


def _list_tokens(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    out.write(format_tokens(_token_store(settings).list()))
    return 0


def _revoke_token(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if not _token_store(settings).revoke(args.id):
        raise LedgerError(f"no live token {args.id} (unknown or already revoked)")
    print(f"revoked {args.id}", file=out)
    return 0


def _token_store(settings: Settings) -> TokenStore:
    from ledger.server import open_database

    return TokenStore(open_database(settings))


def _add_credential_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`ledger credentials create/list/revoke`: the vendor dialects' signing credentials."""
    from ledger.credentials import Dialect

    credentials = commands.add_parser("credentials", help="credentials of the vendor dialects")
    credential_commands = credentials.add_subparsers(metavar="COMMAND", required=True)
    create = credential_commands.add_parser(
        "create", help="create a credential and print it as env-style lines, once"
    )
    create.add_argument("--dialect", required=True, choices=[d.value for d in Dialect])
    create.add_argument("--tenant", required=True, help="the tenant the credential acts for")
    create.add_argument("--label", help="a note for people, shown by `credentials list`")
    create.set_defaults(command=_create_credential)
    listing = credential_commands.add_parser("list", help="list credentials (never secrets)")
    listing.set_defaults(command=_list_credentials)
    revoke = credential_commands.add_parser("revoke", help="revoke a credential, at once")
    revoke.add_argument("id", help="SECRET_ID, AK or USERNAME, as `credentials create` printed")
    revoke.set_defaults(command=_revoke_credential)


def _credential_store(settings: Settings) -> CredentialStore:
    from ledger.credentials import CredentialStore
    from ledger.server import open_database

    return CredentialStore(open_database(settings))


def _create_credential(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    try:
        issued = _credential_store(settings).create(args.dialect, args.tenant, args.label)
    except InvalidCommand as exc:
        raise UsageError(f"--{exc.field}: {exc.reason}") from None
    out.write(issued.env_lines())
    return 0


def _list_credentials(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    rows = [
        (c.id, str(c.dialect), c.tenant, c.label or "-", _when(c.created_at),
         _when(c.revoked_at) if c.revoked_at else "-")
        for c in _credential_store(settings).list()
    ]  # fmt: skip
    out.write(format_table(("ID", "DIALECT", "TENANT", "LABEL", "CREATED", "REVOKED"), rows))
    return 0


def _revoke_credential(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if not _credential_store(settings).revoke(args.id):
        raise LedgerError(f"no live credential {args.id} (unknown or already revoked)")
    print(f"revoked {args.id}", file=out)
    return 0


# -- output -----------------------------------------------------------------------

TOKEN_COLUMNS: Final = ("ID", "TENANT", "ROLE", "LABEL", "CREATED", "REVOKED")


def format_created(token_id: str, tenant: str | None, role: str, token: str) -> str:
    """What `tokens create` prints: the facts, then the token alone on the last line."""
    return f"id={token_id}\ntenant={tenant or GLOBAL}\nrole={role}\n{token}\n"


def format_tokens(tokens: Sequence[TokenInfo]) -> str:
    """`tokens list`: one row per token, newest last; secrets are never stored, so never shown."""
    rows = [
        (
            t.id,
            t.tenant or GLOBAL,
            str(t.role),
            t.label or "-",
            _when(t.created_at),
            _when(t.revoked_at) if t.revoked_at else "-",
        )
        for t in tokens
    ]
    return format_table(TOKEN_COLUMNS, rows)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under a header, two spaces apart."""
    lines = [list(header), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in lines
    )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- plumbing ---------------------------------------------------------------------


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {port}")
    return port


def _workers(raw: str) -> int:
    try:
        workers = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of workers: {raw!r}") from None
    if workers < 1:
        raise argparse.ArgumentTypeError(f"workers must be at least 1, got {workers}")
    return workers


def _fail(parser: argparse.ArgumentParser, message: str, status: int) -> int:
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
