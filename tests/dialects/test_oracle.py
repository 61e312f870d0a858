"""Oracle Identity Governance scheduler "Create a new job", over plain HTTP like its cURL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.dialects.oracle import job_id_for
from ledger.credentials import CredentialStore, Issued
from ledger.domain import JobStatus
from tests.dialects.conftest import Live

PATH = "/iam/governance/selfservice/api/v1/scheduler/jobs"
TENANT = "oig-tenant"
DOC_BODY = """{
"jobName": "Test Job",
"taskName": "OIM Certification Purge Task",
"retryCount": 1,
"parameters": {
"Cert Campaigns for Purge": {
"value": 11
},
"Purge Retention Period(in days)": {
"value": 5
},
"Purge Criteria": {
"value": 1
},
"Maximum Purge Run Duration(in Mins)": {
"value": 6
}
}
}"""


def post(
    live: Live, user: Issued | None, body: Any, *, path: str = PATH, csrf: bool = True
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if csrf:
        headers["X-Requested-By"] = "<anyvalue>"
    content = body if isinstance(body, str) else httpx.Request("POST", "/", json=body).content
    with live.http() as client:
        if user is None:
            return client.post(path, content=content, headers=headers)
        return client.post(path, content=content, headers=headers, auth=(user.id, user.secret))


def assert_refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.json()["errorMessage"]


@pytest.fixture(scope="module")
def live(shared: Live) -> Live:
    """One server for the module: each test writes jobs of its own names or tenants."""
    return shared


@pytest.fixture(scope="module")
def user(shared: Live) -> Issued:
    return shared.credential("oracle", TENANT)


def test_the_curl_example_creates_the_job(live: Live, user: Issued) -> None:
    response = post(live, user, DOC_BODY, path=PATH + "/")  # the example's trailing slash
    assert response.status_code == 200, response.text
    assert response.json() == {"jobName": "Test Job", "status": "Job Create successfull"}
    job = live.ledger.get_job(TENANT, job_id_for("Test Job"))
    assert (job.job_type, job.name, job.status) == (
        "OIM Certification Purge Task", "Test Job", JobStatus.PENDING,
    )  # fmt: skip
    assert job.parameters == {
        "Cert Campaigns for Purge": 11, "Purge Retention Period(in days)": 5,
        "Purge Criteria": 1, "Maximum Purge Run Duration(in Mins)": 6,
    }  # fmt: skip
    assert job.max_attempts == 2 and job.created_by == user.id


def test_the_schema_s_parameter_array_and_a_running_status(live: Live, user: Issued) -> None:
    body = {
        "jobName": "Nightly recon",
        "taskName": "Target Reconciliation",
        "retryCount": 0,
        "status": "RUNNING",
        "concurrent": False,
        "isEnabled": True,
        "jobScheduleType": "PERIODIC",
        "notification": {"onFailure": ["admin"]},
        "parameters": [
            {"name": "IT Resource", "value": "AD", "dataType": "ITResource", "required": True},
            {"name": "Batch Size", "value": "500", "dataType": "Number", "helpText": "rows"},
        ],
    }
    response = post(live, user, body)
    assert response.status_code == 200, response.text
    job = live.ledger.get_job(TENANT, job_id_for("Nightly recon"))
    assert job.status is JobStatus.RUNNING and job.max_attempts == 1
    assert job.parameters == {"IT Resource": "AD", "Batch Size": "500"}
    assert job.labels["oig.isEnabled"] == "true" and job.labels["oig.jobScheduleType"] == "PERIODIC"


def test_a_post_without_x_requested_by_is_refused(live: Live, user: Issued) -> None:
    assert_refused(post(live, user, DOC_BODY, csrf=False), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"taskName": "t", "retryCount": 1},
        {"jobName": "j", "retryCount": 1},
        {"jobName": "j", "taskName": "t"},
        {"jobName": "j", "taskName": "t", "retryCount": "one"},
        {"jobName": "j", "taskName": "t", "retryCount": -1},
        {"jobName": "j", "taskName": "t", "retryCount": 1, "status": "DONE"},
        {"jobName": "j", "taskName": "t", "retryCount": 1, "owner": "x"},
        {"jobName": "", "taskName": "t", "retryCount": 1},
        "{not json",
    ],
)
def test_bad_input_is_400(live: Live, user: Issued, body: Any) -> None:
    response = post(live, user, body)
    assert_refused(response, 400)
    assert response.json()["errorMessage"].startswith("Invalid input")


def test_a_job_name_is_created_once_per_tenant(live: Live) -> None:
    user = live.credential("oracle", "oig-again")
    assert post(live, user, DOC_BODY).status_code == 200
    assert_refused(post(live, user, DOC_BODY), 400)
    elsewhere = live.credential("oracle", "other-tenant")
    assert post(live, elsewhere, DOC_BODY).status_code == 200  # tenants don't see each other
    assert live.ledger.get_job("other-tenant", job_id_for("Test Job")).created_by == elsewhere.id


def test_bad_credentials_are_401(live: Live, user: Issued) -> None:
    wrong = Issued(id=user.id, dialect=user.dialect, tenant=TENANT, secret=user.secret + "x")
    for who in (None, wrong, Issued(id="nobody", dialect=user.dialect, tenant=TENANT, secret="x")):
        response = post(live, who, DOC_BODY)
        assert_refused(response, 401)
        assert response.headers["www-authenticate"].startswith("Basic")
    tencent = live.credential("tencent", TENANT)  # not an Oracle user
    assert_refused(post(live, tencent, DOC_BODY), 401)


def test_a_revoked_user_is_refused_at_once(live: Live) -> None:
    user = live.credential("oracle", TENANT)
    CredentialStore(live.settings).revoke(user.id)
    assert_refused(post(live, user, DOC_BODY), 401)
