"""The README's client example runs as written against a served API."""

from __future__ import annotations

import re
from pathlib import Path

from ledger.application import JobLedger
from ledger.client import Job
from tests.client.stored import event_names

README = Path(__file__).resolve().parents[2] / "README.md"


def client_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Client library", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "README shows no client example"
    return match.group(1)


def test_the_readme_client_example_runs(base_url: str, token: str, ledger: JobLedger) -> None:
    code = client_example()
    assert len(code.strip().splitlines()) <= 12
    code = code.replace('"http://127.0.0.1:8000"', repr(base_url))
    namespace: dict[str, object] = {"token": token}
    exec(compile(code, "README.md", "exec"), namespace)
    job = namespace["job"]
    assert isinstance(job, Job) and namespace["failed"] == []
    assert event_names(ledger, job.id) == ["Created", "Started"] + ["Progressed"] * 5 + [
        "Succeeded"
    ]
