"""Settings.from_env: defaults, every LEDGER_* variable, and refusals that name the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ledger.settings
from ledger.errors import ConfigurationError
from ledger.settings import Settings, parse_database_url
from ledger.workers import worker_environment

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_serve_locally_on_the_embedded_database() -> None:
    settings = Settings.from_env({})

    assert settings.database_url is None
    assert settings.data_dir == Path(".ledger")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.admin_token is None
    assert settings.run_projections is True
    assert settings.database_schema == "public"
    assert settings.log_level == "INFO"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.min_position_timeout == 5.0


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "LEDGER_DATABASE_URL": "postgresql://u:p@db:6543/ledger",
            "LEDGER_DATABASE_SCHEMA": "jobs",
            "LEDGER_DATA_DIR": "/var/lib/ledger",
            "LEDGER_HOST": "0.0.0.0",
            "LEDGER_PORT": "9000",
            "LEDGER_ADMIN_TOKEN": "s3cret",
            "LEDGER_RUN_PROJECTIONS": "false",
            "LEDGER_LOG_LEVEL": "debug",
            "LEDGER_LOG_FORMAT": "json",
            "LEDGER_MAX_BODY_BYTES": "2048",
            "LEDGER_MIN_POSITION_TIMEOUT": "1.5",
            "LEDGER_POOL_MIN_SIZE": "1",
            "LEDGER_POOL_MAX_SIZE": "4",
            "LEDGER_POLL_INTERVAL": "0.25",
            "LEDGER_SECRET_KEY": "a-fernet-key",
            "LEDGER_MAX_HEADER_BYTES": "4096",
            "LEDGER_REQUEST_TIMEOUT": "12.5",
            "LEDGER_KEEP_ALIVE_TIMEOUT": "2",
            "LEDGER_DATABASE_TIMEOUT": "3",
            "LEDGER_RATE_LIMIT": "20",
            "LEDGER_RATE_BURST": "40",
            "LEDGER_WORKERS": "4",
        }
    )

    assert settings == Settings(
        database_url="postgresql://u:p@db:6543/ledger",
        database_schema="jobs",
        data_dir=Path("/var/lib/ledger"),
        host="0.0.0.0",
        port=9000,
        admin_token="s3cret",
        run_projections=False,
        log_level="DEBUG",
        log_format="json",
        max_body_bytes=2048,
        min_position_timeout=1.5,
        pool_min_size=1,
        pool_max_size=4,
        poll_interval=0.25,
        secret_key="a-fernet-key",
        max_header_bytes=4096,
        request_timeout=12.5,
        keep_alive_timeout=2.0,
        database_timeout=3,
        rate_limit=20.0,
        rate_burst=40,
        workers=4,
    )


def test_empty_values_mean_unset() -> None:
    settings = Settings.from_env(
        {"LEDGER_DATABASE_URL": "", "LEDGER_ADMIN_TOKEN": "", "LEDGER_PORT": ""}
    )

    assert settings.database_url is None
    assert settings.admin_token is None
    assert settings.port == 8000


@pytest.mark.parametrize("raw", ["1", "true", "YES", "on"])
def test_true_spellings(raw: str) -> None:
    assert Settings.from_env({"LEDGER_RUN_PROJECTIONS": raw}).run_projections is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_false_spellings(raw: str) -> None:
    assert Settings.from_env({"LEDGER_RUN_PROJECTIONS": raw}).run_projections is False


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("LEDGER_PORT", "eighty"),
        ("LEDGER_MAX_BODY_BYTES", "1MB"),
        ("LEDGER_MIN_POSITION_TIMEOUT", "soon"),
        ("LEDGER_RUN_PROJECTIONS", "maybe"),
        ("LEDGER_POOL_MAX_SIZE", "1.5"),
        ("LEDGER_WORKERS", "two"),
        ("LEDGER_WORKERS", "0"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=name) as caught:
        Settings.from_env({name: raw})

    assert repr(raw) in str(caught.value)


def test_the_workers_environment_reads_back_as_the_settings_it_came_from() -> None:
    settings = Settings(
        database_url="postgresql://postgres@/postgres?host=/tmp/ledger/pgdata",
        database_schema="jobs",
        data_dir=Path("/var/lib/ledger"),
        host="0.0.0.0",
        port=9000,
        run_projections=False,
        log_level="DEBUG",
        log_format="json",
        min_position_timeout=1.5,
        poll_interval=0.2,
        secret_key="a-fernet-key",
        rate_limit=20.5,
        workers=3,
    )

    assert Settings.from_env(worker_environment(settings)) == settings
    assert Settings.from_env(worker_environment(Settings())) == Settings()


def test_with_database_points_a_copy_at_the_url() -> None:
    settings = Settings.from_env({"LEDGER_PORT": "9001"})

    pointed = settings.with_database("postgresql://postgres@/postgres?host=/tmp/x")

    assert pointed.database_url == "postgresql://postgres@/postgres?host=/tmp/x"
    assert pointed.port == 9001
    assert settings.database_url is None


def test_a_tcp_url_splits_into_its_parts() -> None:
    params = parse_database_url("postgresql://ledger:p%40ss@db.internal:6543/jobs")

    assert (params.host, params.port, params.user, params.password, params.dbname) == (
        "db.internal",
        6543,
        "ledger",
        "p@ss",
        "jobs",
    )


def test_a_socket_url_like_the_embedded_servers_splits_into_its_parts() -> None:
    params = parse_database_url("postgresql://postgres:@/postgres?host=/tmp/ledger/pgdata")

    assert (params.host, params.port, params.user, params.password, params.dbname) == (
        "/tmp/ledger/pgdata",
        5432,
        "postgres",
        "",
        "postgres",
    )


def test_a_url_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="LEDGER_DATABASE_URL"):
        parse_database_url("mysql://root@localhost/test")


def test_every_variable_is_in_the_readmes_configuration_table() -> None:
    source = Path(ledger.settings.__file__).read_text(encoding="utf-8")
    names = set(re.findall(r'"(LEDGER_[A-Z_]+)"', source))
    readme = README.read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]

    assert len(names) > 10
    assert sorted(n for n in names if f"| `{n}` |" not in table) == []
