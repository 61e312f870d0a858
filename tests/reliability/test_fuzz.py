"""Schemathesis over the served OpenAPI document: every operation, valid and invalid
requests, a bounded number of each; no 5xx, and answers as the document describes them.

Every operation, the vendor dialects' included, is held to the whole document (status
codes, content types, response schemas): each dialect documents its vendor's envelopes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.processes import Served
from tests.reliability.harness import ADMIN_TOKEN, Cluster, bearer

pytestmark = pytest.mark.reliability

EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "25"))
"""Requests per operation and mode (valid, invalid); CI keeps the default."""
JOBS = 40
"""Jobs of tenant acme, half of them running, for the operations on one job to find."""
FULL_CHECKS = [response_schema_conformance, content_type_conformance, status_code_conformance]


@pytest.fixture(scope="module")
def served(module_cluster: Cluster) -> Served:
    # A short wait for min_position: a fuzzed position far ahead is answered 503 soon.
    served = module_cluster.serve(LEDGER_MIN_POSITION_TIMEOUT="0.2")
    with httpx.Client(base_url=served.url, headers=bearer(ADMIN_TOKEN), timeout=10) as http:
        for n in range(JOBS):
            body = {"id": f"fuzz-{n}", "job_type": "fuzz", "tenant": "acme", "max_attempts": 9}
            assert http.post("/api/v1/jobs", json=body).status_code == 201
            if n % 2:
                started = http.post(
                    f"/api/v1/jobs/fuzz-{n}/events?tenant=acme", json={"type": "started"}
                )
                assert started.status_code == 201
    return served


def no_server_error(response: Any, case: Any) -> None:
    """No 5xx, except the documented 503 for a `min_position` the log hasn't reached."""
    if response.status_code < 500:
        return
    if response.status_code == 503 and "min_position" in (case.query or {}):
        problem = response.json()
        assert problem["type"].endswith("/position-not-reached"), response.text
        assert response.headers["retry-after"]
        return
    raise AssertionError(
        f"{response.status_code} from {case.method} {case.formatted_path}: {response.text[:500]}"
    )


def fuzz(
    operation: Any, mode: GenerationMode, url: str, sent: list[int], **fixed: Any
) -> Callable[[], None]:
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(base_url=url, headers=bearer(ADMIN_TOKEN), timeout=15)
        sent.append(response.status_code)
        no_server_error(response, case)
        case.validate_response(response, checks=FULL_CHECKS, excluded_checks=[not_a_server_error])

    return run


def test_fuzzed_requests_get_no_5xx_and_documented_answers(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/schema/openapi.json")
    failures: list[str] = []
    sent: list[int] = []
    operations: list[Any] = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert any(op.path.startswith("/api/v1/") for op in operations)
    assert any(op.path.startswith("/identity/") for op in operations)  # the dialects too
    runs: list[tuple[Any, GenerationMode, dict[str, Any]]] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            runs.append((operation, mode, {}))
        if "{job_id}" in operation.path:
            # Random ids name no job: also fuzz everything else against jobs that exist.
            for n in range(3):
                fixed = {"path_parameters": {"job_id": f"fuzz-{n}"}, "query": {"tenant": "acme"}}
                runs.append((operation, GenerationMode.POSITIVE, fixed))
    for operation, mode, fixed in runs:
        try:
            fuzz(operation, mode, served.url, sent, **fixed)()
        except Unsatisfiable:
            pass  # nothing of this operation can be made invalid (no parameters, no body)
        except (Exception, BaseExceptionGroup) as error:  # every operation is tried, then reported
            failures.append(f"{operation.label} ({mode}, {fixed}): {error}"[:3000])
    counts = {kind: sum(1 for s in sent if s // 100 == kind) for kind in (2, 3, 4, 5)}
    print(f"fuzzed {len(operations)} operations, {len(sent)} requests, by class {counts}")
    assert failures == [], "\n\n".join(failures)
    assert "Traceback" not in served.output()
