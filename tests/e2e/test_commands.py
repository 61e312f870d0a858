"""`ledger migrate` and `ledger tokens` as real processes, on a server and embedded."""

from __future__ import annotations

import psycopg

from tests.e2e.processes import Ledger, postgres_processes

SCHEMA_SHAPE = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type
  FROM information_schema.columns WHERE table_schema = %(schema)s
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = %(schema)s
ORDER BY 1, 2
"""


def _shape(url: str, schema: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(SCHEMA_SHAPE, {"schema": schema}).fetchall()


def test_migrate_twice_changes_nothing_the_first_did_not(
    external: Ledger, schema_url: tuple[str, str]
) -> None:
    url, schema = schema_url

    first = external.check("migrate")
    shape = _shape(url, schema)
    token_id = external.check("tokens", "create", "--tenant", "acme", "--role", "reader")
    second = external.check("migrate")

    assert first.startswith("schema up to date on postgresql://")
    assert second == first
    assert _shape(url, schema) == shape
    assert {"ledger_events", "api_tokens", "idempotency_keys"} <= {
        name.split(".")[0] for kind, name in shape if kind == "column"
    }
    assert token_id.splitlines()[0].removeprefix("id=") in external.check("tokens", "list")


def test_migrate_on_the_embedded_default_starts_and_stops_its_server(embedded: Ledger) -> None:
    pgdata = (embedded.cwd / "data" / "pgdata").resolve()

    first = embedded.check("migrate")
    assert postgres_processes(pgdata) == []
    second = embedded.check("migrate")

    assert first == second
    assert first.splitlines()[0] == f"schema up to date on embedded PostgreSQL, data in {pgdata}"
    assert (pgdata / "PG_VERSION").exists()
    assert postgres_processes(pgdata) == []


def test_a_created_token_is_printed_once_alone_on_the_last_line(external: Ledger) -> None:
    out = external.check(
        "tokens", "create", "--tenant", "acme", "--role", "writer", "--label", "ci"
    )

    lines = out.splitlines()
    token = lines[-1]
    assert lines[0].startswith("id=tok_")
    assert lines[1:-1] == ["tenant=acme", "role=writer"]
    assert token.startswith(f"ltk_{lines[0].removeprefix('id=')}.")
    assert " " not in token
    assert out.count(token) == 1


def test_a_global_admin_token_has_no_tenant(external: Ledger) -> None:
    out = external.check("tokens", "create", "--global", "--role", "admin")

    assert out.splitlines()[1:3] == ["tenant=*", "role=admin"]


def test_the_list_shows_every_token_and_no_secret(external: Ledger) -> None:
    created = [
        external.check("tokens", "create", "--tenant", "acme", "--role", "reader").splitlines(),
        external.check("tokens", "create", "--global", "--role", "admin").splitlines(),
    ]

    listing = external.check("tokens", "list")

    header, *rows = listing.splitlines()
    assert header.split() == ["ID", "TENANT", "ROLE", "LABEL", "CREATED", "REVOKED"]
    assert [row.split()[:3] for row in rows] == [
        [created[0][0].removeprefix("id="), "acme", "reader"],
        [created[1][0].removeprefix("id="), "*", "admin"],
    ]
    for lines in created:
        secret = lines[-1].partition(".")[2]
        assert secret not in listing


def test_a_revoked_token_is_listed_as_revoked_and_cannot_be_revoked_again(
    external: Ledger,
) -> None:
    token_id = external.check("tokens", "create", "--tenant", "acme", "--role", "writer")
    token_id = token_id.splitlines()[0].removeprefix("id=")

    revoked = external.check("tokens", "revoke", token_id)
    again = external.run("tokens", "revoke", token_id)

    assert revoked == f"revoked {token_id}\n"
    (row,) = external.check("tokens", "list").splitlines()[1:]
    assert row.split()[-1] != "-"
    assert again.returncode == 1
    assert again.stderr == (
        f"ledger: error: no live token {token_id} (unknown or already revoked)\n"
    )


def test_bad_arguments_exit_2_with_one_line_and_no_traceback(external: Ledger) -> None:
    global_writer = external.run("tokens", "create", "--global", "--role", "writer")
    bad_tenant = external.run("tokens", "create", "--tenant", "a b", "--role", "reader")
    no_role = external.run("tokens", "create", "--tenant", "acme")

    assert [global_writer.returncode, bad_tenant.returncode, no_role.returncode] == [2, 2, 2]
    assert global_writer.stderr.startswith("ledger: error: --global needs --role admin")
    assert bad_tenant.stderr.startswith("ledger: error: --tenant: must match")
    assert "the following arguments are required: --role" in no_role.stderr
    for done in (global_writer, bad_tenant, no_role):
        assert "Traceback" not in done.stderr
        assert done.stdout == ""


def test_an_unreachable_database_is_named_without_its_password(external: Ledger) -> None:
    external.env["LEDGER_DATABASE_URL"] = "postgresql://ledger:hunter2@127.0.0.1:1/jobs"

    done = external.run("migrate")

    assert done.returncode == 1
    assert done.stderr.startswith(
        "ledger: error: cannot use the database (postgresql://ledger:***@127.0.0.1:1/jobs)"
    )
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr
