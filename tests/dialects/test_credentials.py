"""`ledger credentials`: env-style output, secrets encrypted or hashed at rest, revoke at once."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg import sql

from ledger.cli import main
from ledger.credentials import KEY_FILE, AsyncCredentials, Dialect, server_key
from ledger.settings import Settings
from projections.queries import JobQueryService


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().out


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The command line pointed at the test's schema and data dir."""
    assert settings.database_url is not None
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LEDGER_DATABASE_SCHEMA", settings.database_schema)
    monkeypatch.setenv("LEDGER_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("LEDGER_SECRET_KEY", raising=False)
    return settings


def env_lines(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines())


@pytest.mark.parametrize(
    ("dialect", "names"),
    [("tencent", ("SECRET_ID", "SECRET_KEY")), ("huawei", ("AK", "SK")),
     ("oracle", ("USERNAME", "PASSWORD"))],
)  # fmt: skip
async def test_create_prints_env_lines_and_keeps_no_plain_secret(
    cli_env: Settings, capsys: pytest.CaptureFixture[str], dialect: str, names: tuple[str, str]
) -> None:
    status, out = run(capsys, "credentials", "create", "--dialect", dialect, "--tenant", "acme")
    assert status == 0
    lines = env_lines(out)
    assert lines["DIALECT"] == dialect and lines["TENANT"] == "acme"
    cred_id, secret = lines[names[0]], lines[names[1]]
    assert cred_id and len(secret) >= 24
    assert cli_env.database_url is not None
    with psycopg.connect(cli_env.database_url) as conn:
        stored = conn.execute(
            sql.SQL("SELECT secret_encrypted, password_hash FROM {} WHERE id = %s").format(
                sql.Identifier(cli_env.database_schema, "dialect_credentials")
            ),
            (cred_id,),
        ).fetchone()
    assert stored is not None
    encrypted, hashed = stored
    assert secret.encode() not in bytes(encrypted or b"") and secret not in (hashed or "")
    if dialect == "oracle":
        assert hashed.startswith("scrypt$") and encrypted is None
    else:
        key = server_key(cli_env)
        assert key.decrypt(bytes(encrypted)).decode() == secret
        assert (cli_env.data_dir / KEY_FILE).exists()


async def test_revoke_works_at_once_and_list_shows_it(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = run(capsys, "credentials", "create", "--dialect", "huawei", "--tenant", "acme")
    ak, sk = env_lines(out)["AK"], env_lines(out)["SK"]
    _, out = run(capsys, "credentials", "create", "--dialect", "oracle", "--tenant", "acme")
    user, password = env_lines(out)["USERNAME"], env_lines(out)["PASSWORD"]
    queries = await JobQueryService.connect(cli_env)
    try:
        live = AsyncCredentials(queries.pool, cli_env.database_schema, server_key(cli_env))
        signer = await live.signer(Dialect.HUAWEI, ak)
        assert signer is not None and signer.secret == sk and signer.tenant == "acme"
        assert await live.password_user(user, password) == "acme"
        assert await live.password_user(user, password + "x") is None
        assert run(capsys, "credentials", "revoke", ak) == (0, f"revoked {ak}\n")
        assert run(capsys, "credentials", "revoke", user)[0] == 0
        assert await live.signer(Dialect.HUAWEI, ak) is None
        assert await live.password_user(user, password) is None
    finally:
        await queries.close()
    status, out = run(capsys, "credentials", "list")
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows[ak][1:3] == ["huawei", "acme"] and rows[ak][-1] != "-"
    assert sk not in out and password not in out
    assert run(capsys, "credentials", "revoke", ak)[0] == 1


def test_a_bad_tenant_is_refused(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["credentials", "create", "--dialect", "tencent", "--tenant=-bad"])
    assert status == 2


def test_the_server_key_comes_from_the_environment_when_set(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    fernet = server_key(Settings(secret_key=key, data_dir=tmp_path))
    assert Fernet(key.encode()).decrypt(fernet.encrypt(b"x")) == b"x"
    assert not (tmp_path / KEY_FILE).exists()
