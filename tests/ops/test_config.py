"""`ledger config`: every setting with its variable and source, and no secret shown."""

from __future__ import annotations

from ledger.effective_settings import effective_settings, render
from ledger.settings import Settings
from tests.ops.test_infra import Recording

ENVIRON = {
    "LEDGER_DATABASE_URL": "postgresql://ledger:s3cret-pw@db.internal:5432/ledger",
    "LEDGER_ADMIN_TOKEN": "admin-token-value",
    "LEDGER_SECRET_KEY": "fernet-key-value",
    "LEDGER_LOG_FORMAT": "json",
    "LEDGER_POOL_MAX_SIZE": "20",
}


def test_effective_settings_mask_secrets_and_say_where_each_came_from() -> None:
    lines = {
        line.variable: line for line in effective_settings(Settings.from_env(ENVIRON), ENVIRON)
    }
    assert lines["LEDGER_DATABASE_URL"].value == "postgresql://ledger:***@db.internal:5432/ledger"
    assert lines["LEDGER_ADMIN_TOKEN"].value == "****"
    assert lines["LEDGER_SECRET_KEY"].value == "****"
    assert (lines["LEDGER_POOL_MAX_SIZE"].value, lines["LEDGER_POOL_MAX_SIZE"].source) == (
        "20",
        "env",
    )
    assert (lines["LEDGER_PORT"].value, lines["LEDGER_PORT"].source) == ("8000", "default")
    assert lines["LEDGER_RUN_PROJECTIONS"].value == "true"
    text = render(list(lines.values()))
    for secret in ("s3cret-pw", "admin-token-value", "fernet-key-value"):
        assert secret not in text


def test_every_variable_shown_is_one_the_settings_read() -> None:
    recording = Recording()
    Settings.from_env(recording)
    shown = {line.variable for line in effective_settings(Settings(), {})}
    assert shown == recording.asked
