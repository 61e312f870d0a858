"""One access-log line per request, with its fields and never a token."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from ledger.client import LedgerClient


def test_each_request_logs_one_line_with_its_fields_and_no_token(
    base_url: str, token: str, writer: LedgerClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    writer.create_job("export", id="job-1")
    answer = httpx.get(
        f"{base_url}/api/v1/jobs/job-1",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-abc"},
    )
    assert answer.status_code == 200
    refused = httpx.get(f"{base_url}/api/v1/jobs", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401

    # The server writes its access line after the answer has gone out, so the last
    # line can land a moment after the client has read its answer.
    deadline = time.monotonic() + 5
    while len(access_lines(caplog)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    fields = [r.fields for r in access_lines(caplog)]  # type: ignore[attr-defined]
    assert [(f["method"], f["route"], f["status"]) for f in fields] == [
        ("POST", "/api/v1/jobs", 201),
        ("GET", "/api/v1/jobs/{job_id}", 200),
        ("GET", "/api/v1/jobs", 401),
    ]
    assert fields[1]["request_id"] == "req-abc" and fields[1]["tenant"] == "acme"
    assert fields[2]["tenant"] is None
    assert all(f["duration_ms"] >= 0 and f["request_id"] for f in fields)
    every_line = "\n".join(caplog.text.splitlines() + [str(r.__dict__) for r in caplog.records])
    assert token not in every_line and token.rsplit(".", 1)[-1] not in every_line


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "api.access"]
