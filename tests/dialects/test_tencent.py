"""Tencent Cloud CIAM ListJobs, driven by Tencent's own SDK (tencentcloud-sdk-python-ciam)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg import sql
from tencentcloud.ciam.v20220331 import ciam_client, models  # type: ignore[import-untyped]
from tencentcloud.common import abstract_client  # type: ignore[import-untyped]
from tencentcloud.common.credential import Credential  # type: ignore[import-untyped]
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # type: ignore[import-untyped]
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped]
from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped]

from ledger.commands import Fail, Start
from ledger.credentials import CredentialStore, Issued
from tests.dialects.conftest import Live, done, running

STORE = "2c3aca3b0123456789abcdefa7efe88e"  # the document's masked id, unmasked
JOB = "c29f2c0f0123456789abcdef405ec698"
DOC_FIELDS = {
    "Format": "NDJSON",
    "Location": "http://aa.com/bb.csv",
    "ErrorDetails": [{"UserId": "53e25c3", "Error": "error message"}],
    "FailedUsers": [{"FailedUserIdentification": "53e25c3", "FailedReason": "error reason"}],
}


def client_for(live: Live, cred: Issued | tuple[str, str]) -> ciam_client.CiamClient:
    secret_id, secret_key = (cred.id, cred.secret) if isinstance(cred, Issued) else cred
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=live.host, protocol="http"))
    return ciam_client.CiamClient(Credential(secret_id, secret_key), "ap-guangzhou", profile)


def list_jobs(client: ciam_client.CiamClient, **fields: Any) -> models.ListJobsResponse:
    request = models.ListJobsRequest()
    for name, value in fields.items():
        setattr(request, name, value)
    return client.ListJobs(request)


def error_of(call: Any) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as caught:
        call()
    assert caught.value.get_request_id(), "the error envelope carries a RequestId"
    return caught.value


@pytest.fixture(scope="module")
def seeded(shared: Live) -> Live:
    shared.job(STORE, JOB, job_type="IMPORT_USER", parameters=DOC_FIELDS)
    shared.job(STORE, "job-export", *done(), job_type="EXPORT_USER")
    shared.job(STORE, "job-running", *running(30), job_type="IMPORT_USER")
    shared.job("store-other", "job-other", job_type="IMPORT_USER")
    return shared


@pytest.fixture(scope="module")
def cred(seeded: Live) -> Issued:
    return seeded.credential("tencent", STORE)


def test_the_documented_example_answers_the_documented_shape(seeded: Live, cred: Issued) -> None:
    answer = list_jobs(client_for(seeded, cred), UserStoreId=STORE, JobIds=[JOB])
    assert answer.RequestId
    (job,) = answer.JobSet
    assert (job.Id, job.Status, job.Type, job.Format, job.Location) == (
        JOB, "PENDING", "IMPORT_USER", "NDJSON", "http://aa.com/bb.csv",
    )  # fmt: skip
    assert isinstance(job.CreatedDate, int) and abs(job.CreatedDate / 1000 - time.time()) < 600
    assert (job.ErrorDetails[0].UserId, job.ErrorDetails[0].Error) == ("53e25c3", "error message")
    assert job.FailedUsers[0].FailedReason == "error reason"
    raw = client_for(seeded, cred).call_json("ListJobs", {"UserStoreId": STORE, "JobIds": [JOB]})
    assert set(raw["Response"]) == {"JobSet", "RequestId"}
    assert set(raw["Response"]["JobSet"][0]) == {"Id", "Status", "Type", "CreatedDate", *DOC_FIELDS}


def test_the_masked_example_sent_verbatim_is_a_documented_error(seeded: Live, cred: Issued) -> None:
    body = {
        "UserStoreId": "2c3aca3b****************a7efe88e",
        "JobIds": ["c29f2c0f****************405ec698"],
    }
    error = error_of(lambda: client_for(seeded, cred).call_json("ListJobs", body))
    assert error.get_code() == "ResourceNotFound"


def test_without_job_ids_every_job_of_the_store_is_listed(seeded: Live, cred: Issued) -> None:
    answer = list_jobs(client_for(seeded, cred), UserStoreId=STORE)
    assert {job.Id: job.Status for job in answer.JobSet} == {
        JOB: "PENDING", "job-export": "COMPLETED", "job-running": "PROCESSING",
    }  # fmt: skip
    assert answer.JobSet[0].Id == "job-running"  # newest first


def test_answers_are_exactly_application_json(seeded: Live) -> None:
    with seeded.http() as client:
        response = client.post("/", json={}, headers={"X-TC-Action": "ListJobs"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["Response"]["Error"]["Code"] == "AuthFailure.InvalidAuthorization"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"UserStoreId": STORE, "JobIds": ["job-nope"]}, "ResourceNotFound"),
        ({"UserStoreId": STORE, "JobIds": ["job-other"]}, "ResourceNotFound"),  # another store's
        ({"UserStoreId": "store-other"}, "ResourceNotFound"),  # not the credential's store
        ({"JobIds": [JOB]}, "MissingParameter"),
        ({"UserStoreId": STORE, "JobIds": "job-export"}, "InvalidParameter"),
        ({"UserStoreId": 42}, "InvalidParameter"),
    ],
)
def test_request_errors(seeded: Live, cred: Issued, fields: dict[str, Any], code: str) -> None:
    assert error_of(lambda: list_jobs(client_for(seeded, cred), **fields)).get_code() == code


def test_an_unknown_parameter_is_refused(seeded: Live, cred: Issued) -> None:
    body = {"UserStoreId": STORE, "Limit": 5}
    error = error_of(lambda: client_for(seeded, cred).call_json("ListJobs", body))
    assert error.get_code() == "UnknownParameter"


def test_signature_failures(seeded: Live, cred: Issued, monkeypatch: pytest.MonkeyPatch) -> None:
    def code(secret_id: str, secret_key: str) -> str:
        client = client_for(seeded, (secret_id, secret_key))
        return f"{error_of(lambda: list_jobs(client, UserStoreId=STORE)).get_code()}"

    assert code(cred.id, cred.secret + "x") == "AuthFailure.SignatureFailure"
    assert code("AKIDunknown", cred.secret) == "AuthFailure.SecretIdNotFound"

    class Clock:  # the SDK's clock, ten minutes slow
        @staticmethod
        def time() -> float:
            return time.time() - 600

    monkeypatch.setattr(abstract_client, "time", Clock)
    assert code(cred.id, cred.secret) == "AuthFailure.SignatureExpire"


def test_a_wrong_service_in_the_scope_fails_the_signature(seeded: Live, cred: Issued) -> None:
    client = client_for(seeded, cred)
    client._service = "cvm"  # signs for another product
    assert error_of(lambda: list_jobs(client, UserStoreId=STORE)).get_code() == (
        "AuthFailure.SignatureFailure"
    )


def test_a_revoked_credential_is_refused_at_once(live: Live) -> None:
    issued = live.credential("tencent", STORE)
    client = client_for(live, issued)
    assert list_jobs(client, UserStoreId=STORE).JobSet == []
    CredentialStore(live.settings).revoke(issued.id)
    assert error_of(lambda: list_jobs(client, UserStoreId=STORE)).get_code() == (
        "AuthFailure.SecretIdNotFound"
    )


def test_twenty_requests_per_second_per_credential(live: Live) -> None:
    issued = live.credential("tencent", STORE)
    client = client_for(live, issued)

    def one(_: int) -> str:
        try:
            list_jobs(client, UserStoreId=STORE)
        except TencentCloudSDKException as exc:
            return f"{exc.get_code()}"
        return "ok"

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(26)))
    if time.monotonic() - started < 1:  # all inside one second: exactly 20 get through
        assert codes.count("ok") == 20 and codes.count("RequestLimitExceeded") == 6
    else:
        assert "RequestLimitExceeded" in codes
    other = live.credential("tencent", STORE)
    assert list_jobs(client_for(live, other), UserStoreId=STORE).JobSet == []
    time.sleep(1.0)  # the window moves on
    assert list_jobs(client, UserStoreId=STORE).JobSet == []


def test_a_broken_database_is_an_internal_error(live: Live) -> None:
    issued = live.credential("tencent", STORE)
    live.job(STORE, "job-1", Start(), Fail(error_message="x"))
    assert live.settings.database_url is not None
    with psycopg.connect(live.settings.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP TABLE {}").format(sql.Identifier(live.settings.database_schema, "jobs"))
        )
    error = error_of(lambda: list_jobs(client_for(live, issued), UserStoreId=STORE))
    assert error.get_code() == "InternalError"


def test_unknown_actions_and_versions_are_refused(seeded: Live, cred: Issued) -> None:
    client = client_for(seeded, cred)
    assert error_of(lambda: client.call_json("DeleteJobs", {})).get_code() == "InvalidAction"
    client._apiVersion = "2020-01-01"
    assert error_of(lambda: list_jobs(client, UserStoreId=STORE)).get_code() == "NoSuchVersion"
