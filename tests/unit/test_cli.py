"""The `ledger` command line: what it refuses before touching a database, and what it prints."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.cli import build_parser, format_created, format_tokens, main
from ledger.logs import JsonFormatter
from ledger.server import Shutdown, describe_database, redact, shutdown_on_signals
from ledger.settings import Settings
from ledger.tokens import Role, TokenInfo

CREATED = datetime(2026, 11, 25, 18, 0, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_ledger_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEDGER_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """`main` configures the root logger; later tests should find it as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def _exit_status(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert isinstance(caught.value.code, int)
    return caught.value.code


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["tokens"],
        ["tokens", "create", "--role", "writer"],
        ["tokens", "create", "--tenant", "acme"],
        ["tokens", "create", "--tenant", "acme", "--global", "--role", "admin"],
        ["tokens", "create", "--tenant", "acme", "--role", "owner"],
        ["tokens", "revoke"],
        ["projections"],
        ["serve", "--port", "http"],
        ["serve", "--port", "0"],
        ["serve", "--port", "65536"],
        ["serve", "--workers", "0"],
        ["serve", "--workers", "two"],
        ["frobnicate"],
    ],
    ids=lambda argv: " ".join(argv) or "nothing",
)
def test_a_bad_command_line_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_status(argv) == 2
    assert "usage: ledger" in capsys.readouterr().err


def test_serve_takes_host_port_and_workers() -> None:
    args = build_parser().parse_args(
        ["serve", "--host", "0.0.0.0", "--port", "9000", "--workers", "4"]
    )

    assert (args.host, args.port, args.workers, args.long_running) == ("0.0.0.0", 9000, 4, True)


def test_a_global_token_for_another_role_is_refused_before_any_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Pointing at a server that cannot exist shows no connection is tried.
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")

    status = main(["tokens", "create", "--global", "--role", "writer"])

    assert status == 2
    assert capsys.readouterr().err == (
        "ledger: error: --global needs --role admin: only an admin token may be global\n"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEDGER_PORT", "eighty"),
        ("LEDGER_RUN_PROJECTIONS", "perhaps"),
        ("LEDGER_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_variable_exits_2_naming_it(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, value)

    status = main(["migrate"])

    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"ledger: error: {name} ")
    assert "Traceback" not in err


def test_a_database_url_that_is_not_postgresql_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", "mysql://root@localhost/test")

    status = main(["tokens", "list"])

    assert status == 2
    assert "LEDGER_DATABASE_URL must start with postgresql://" in capsys.readouterr().err


def test_a_created_token_comes_alone_on_the_last_line() -> None:
    out = format_created("tok_1", "acme", "writer", "ltk_tok_1.s3cret")

    lines = out.splitlines()
    assert lines[0] == "id=tok_1"
    assert lines[-1] == "ltk_tok_1.s3cret"
    assert out.count("s3cret") == 1
    assert out.endswith("\n")


def test_a_global_token_shows_its_tenant_as_a_star() -> None:
    assert "tenant=*\n" in format_created("tok_1", None, "admin", "ltk_tok_1.x")


def test_the_token_list_is_a_table_without_secrets() -> None:
    out = format_tokens(
        [
            TokenInfo("tok_a", "acme", Role.WRITER, "ci bot", CREATED, None),
            TokenInfo("tok_bb", None, Role.ADMIN, None, CREATED, CREATED),
        ]
    )

    assert out.splitlines() == [
        "ID      TENANT  ROLE    LABEL   CREATED               REVOKED",
        "tok_a   acme    writer  ci bot  2026-11-25T18:00:05Z  -",
        "tok_bb  *       admin   -       2026-11-25T18:00:05Z  2026-11-25T18:00:05Z",
    ]


def test_an_empty_token_list_still_has_its_header() -> None:
    assert format_tokens([]) == "ID  TENANT  ROLE  LABEL  CREATED  REVOKED\n"


def test_a_password_is_never_shown() -> None:
    assert (
        redact("postgresql://ledger:hunter2@db:5432/jobs") == "postgresql://ledger:***@db:5432/jobs"
    )
    assert redact("postgresql://postgres@127.0.0.1/test") == "postgresql://postgres@127.0.0.1/test"


def test_the_database_is_described_for_people(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path)
    external = Settings(database_url="postgresql://u:pw@db/jobs")

    assert describe_database(embedded) == f"embedded PostgreSQL, data in {tmp_path}/pgdata"
    assert describe_database(external) == "postgresql://u:***@db/jobs"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_unwinds_and_the_old_handler_comes_back(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)

    with pytest.raises(Shutdown) as caught, shutdown_on_signals():
        os.kill(os.getpid(), sig)

    assert caught.value.signum == sig
    assert signal.getsignal(sig) is before


def test_json_logs_are_one_object_a_line() -> None:
    record = logging.LogRecord("ledger.x", logging.WARNING, __file__, 1, "a\nb %s", ("c",), None)
    record.created = CREATED.timestamp()

    line = JsonFormatter().format(record)

    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-11-25T18:00:05.000Z",
        "level": "WARNING",
        "logger": "ledger.x",
        "message": "a\nb c",
    }
