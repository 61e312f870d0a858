"""Huawei Cloud HSS ListTasks, driven by Huawei's own SDK (huaweicloudsdkhss) and by cURL-style
calls with the documented X-Auth-Token."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials  # type: ignore[import-untyped]
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException  # type: ignore[import-untyped]
from huaweicloudsdkcore.signer import signer as huawei_signer  # type: ignore[import-untyped]
from huaweicloudsdkhss.v5 import (  # type: ignore[import-untyped]
    HssClient,
    ListTasksRequest,
    ListTasksRequestBody,
    ListTasksRequestBodyClusterScanInfo,
    ListTasksRequestBodyIacScanInfo,
)

from ledger.commands import RecordProgress, Start, Succeed
from ledger.credentials import CredentialStore, Issued
from tests.dialects.conftest import Live

PROJECT = "2b31ed520xxxxxxebedb6e57xxxxxxxx"  # the document's example project
DOC_TASK_KEYS = {
    "task_id", "task_type", "trigger_type", "task_status", "start_time", "end_time",
    "estimated_time", "cluster_scan_info",
}  # fmt: skip
CLUSTER_COUNTERS = {"scanning_cluster_num": 2, "success_cluster_num": 1, "failed_cluster_num": 1}


def client_for(live: Live, ak: str, sk: str, project: str = PROJECT) -> HssClient:
    return (
        HssClient.new_builder()
        .with_credentials(BasicCredentials(ak, sk, project))
        .with_endpoint(live.url)
        .build()
    )


def tasks(client: HssClient, task_type: str = "cluster_scan", **query: object) -> Any:
    body_fields = {k: v for k, v in query.items() if k not in ("offset", "limit", "ep")}
    request = ListTasksRequest(
        enterprise_project_id=query.get("ep"),
        offset=query.get("offset"),
        limit=query.get("limit"),
        body=ListTasksRequestBody(task_type=task_type, **body_fields),
    )
    return client.list_tasks(request)


def refused(call: Any) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as caught:
        call()
    assert caught.value.request_id, "errors carry X-Request-Id"
    return caught.value


@pytest.fixture(scope="module")
def seeded(shared: Live) -> Live:
    scans = {"scan_type_list": ["cluster_vul", "cis"]}
    shared.job(
        PROJECT, "task-running", Start(), RecordProgress(progress=50, counters=CLUSTER_COUNTERS),
        job_type="cluster_scan", name="Nightly cluster scan", parameters=scans,
    )  # fmt: skip
    shared.job(
        PROJECT, "task-done", Start(), Succeed(counters=CLUSTER_COUNTERS),
        job_type="cluster_scan", name="Weekly audit", parameters={"scan_type_list": ["cis"]},
        labels={"trigger_type": "schedule"},
    )  # fmt: skip
    shared.job(PROJECT, "task-ready", job_type="cluster_scan", name="queued scan")
    for n in range(12):
        shared.job(PROJECT, f"iac-{n:02d}", job_type="iac_scan", parameters={"file_type": "yaml"})
    shared.job(
        PROJECT, "iac-json", Start(), Succeed(counters={"scan_file_num": 3}),
        job_type="iac_scan", parameters={"file_type": "json"},
    )  # fmt: skip
    shared.job("project-other", "task-other", job_type="cluster_scan")
    return shared


@pytest.fixture(scope="module")
def cred(seeded: Live) -> Issued:
    return seeded.credential("huawei", PROJECT)


@pytest.fixture(scope="module")
def sdk(seeded: Live, cred: Issued) -> HssClient:
    return client_for(seeded, cred.id, cred.secret)


def test_the_documented_example_with_x_auth_token(seeded: Live) -> None:
    token = seeded.token(PROJECT)
    with seeded.http() as client:
        response = client.post(
            f"/v5/{PROJECT}/common/tasks/batch-query?enterprise_project_id=all_granted_eps",
            json={"task_type": "cluster_scan"},
            headers={"X-Auth-Token": token},
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["total_num"] == 3 and len(answer["data_list"]) == 3
    done = next(t for t in answer["data_list"] if t["task_id"] == "task-done")
    assert set(done) == DOC_TASK_KEYS | {"task_name"}
    assert done["cluster_scan_info"] == {"scan_type_list": ["cis"], **CLUSTER_COUNTERS}
    assert done["task_status"] == "finished" and done["estimated_time"] == 0
    assert done["end_time"] >= done["start_time"] > 1_700_000_000_000


def test_the_sdk_lists_a_project_s_tasks(sdk: HssClient) -> None:
    answer = tasks(sdk, ep="all_granted_eps")
    assert answer.total_num == 3
    by_id = {t.task_id: t for t in answer.data_list}
    running = by_id["task-running"]
    assert (running.task_status, running.task_name, running.trigger_type) == (
        "running", "Nightly cluster scan", "manual",
    )  # fmt: skip
    assert running.end_time is None and running.estimated_time == 1  # half done in seconds
    assert running.cluster_scan_info.scan_type_list == ["cluster_vul", "cis"]
    assert running.cluster_scan_info.scanning_cluster_num == 2
    assert by_id["task-ready"].task_status == "ready" and by_id["task-ready"].start_time is None
    assert by_id["task-done"].trigger_type == "schedule"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"task_id": "task-done"}, ["task-done"]),
        ({"task_name": "CLUSTER"}, ["task-running"]),
        ({"task_status": "ready"}, ["task-ready"]),
        ({"task_status": "finished"}, ["task-done"]),
        ({"trigger_type": "schedule"}, ["task-done"]),
        (
            {"cluster_scan_info": ListTasksRequestBodyClusterScanInfo(["cis", "cluster_vul"])},
            ["task-running"],
        ),
        ({"sort_key": "start_time", "sort_dir": "asc", "task_status": "running"}, ["task-running"]),
        ({"task_id": "task-other"}, []),  # another project's task is not found
        ({"end_create_time": 1_000}, []),
    ],
)
def test_filters(sdk: HssClient, query: dict[str, Any], expected: list[str]) -> None:
    answer = tasks(sdk, **query)
    assert [t.task_id for t in answer.data_list] == expected
    assert answer.total_num == len(expected)


def test_time_range_and_sort(sdk: HssClient) -> None:
    now = int(time.time() * 1000)
    answer = tasks(sdk, start_create_time=now - 600_000, end_create_time=now + 1000)
    assert answer.total_num == 3
    ordered = tasks(sdk, sort_key="start_time", sort_dir="desc")
    assert [t.task_id for t in ordered.data_list] == ["task-done", "task-running", "task-ready"]
    ascending = tasks(sdk, sort_key="start_time", sort_dir="asc")
    assert [t.task_id for t in ascending.data_list][:2] == ["task-ready", "task-running"]


def test_paging_with_offset_and_limit(sdk: HssClient) -> None:
    first = tasks(sdk, "iac_scan", iac_scan_info=ListTasksRequestBodyIacScanInfo("yaml"))
    second = tasks(
        sdk, "iac_scan", offset=10, limit=10, iac_scan_info=ListTasksRequestBodyIacScanInfo("yaml")
    )
    assert first.total_num == second.total_num == 12
    assert len(first.data_list) == 10 and len(second.data_list) == 2  # limit defaults to 10
    ids = [t.task_id for t in first.data_list + second.data_list]
    assert sorted(ids) == [f"iac-{n:02d}" for n in range(12)]
    json_only = tasks(sdk, "iac_scan", iac_scan_info=ListTasksRequestBodyIacScanInfo("json"))
    (task,) = json_only.data_list
    assert task.iac_scan_info.file_type == "json" and task.iac_scan_info.scan_file_num == 3


@pytest.mark.parametrize(
    "query", [{"limit": 9}, {"limit": 201}, {"offset": -1}, {"offset": 2_000_001}]
)
def test_out_of_range_paging_is_400(sdk: HssClient, query: dict[str, int]) -> None:
    error = refused(lambda: tasks(sdk, "cluster_scan", **query))
    assert (error.status_code, error.error_code) == (400, "HSS.0001")
    assert error.error_msg.startswith("Invalid parameter")


def test_bad_bodies_are_400(seeded: Live) -> None:
    headers = {"X-Auth-Token": seeded.token(PROJECT)}
    path = f"/v5/{PROJECT}/common/tasks/batch-query"
    with seeded.http() as client:
        for body in (
            {},
            {"task_type": "cluster_scan", "task_status": "done"},
            {"task_type": 1},
            {"task_type": "cluster_scan", "start_create_time": 10**20},
            {"task_type": "cluster\u0000scan"},  # PostgreSQL refuses U+0000 in text
        ):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 400, body
            assert response.headers["content-type"] == "application/json", body
            assert response.json()["error_code"] == "HSS.0001" and response.json()["error_msg"]
            assert response.headers["x-request-id"]


def test_bad_and_expired_signatures_are_401(
    seeded: Live, cred: Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    def error(ak: str, sk: str) -> ClientRequestException:
        return refused(lambda: tasks(client_for(seeded, ak, sk)))

    wrong = error(cred.id, cred.secret + "x")
    assert (wrong.status_code, wrong.error_code) == (401, "APIGW.0301")
    assert "signature" in wrong.error_msg
    unknown = error("UNKNOWNAK0000000000", cred.secret)
    assert (unknown.status_code, unknown.error_code) == (401, "APIGW.0301")

    class Slow(datetime):  # the SDK's clock, twenty minutes slow
        @classmethod
        def utcnow(cls) -> datetime:  # type: ignore[override]
            return datetime.utcnow() - timedelta(minutes=20)

    monkeypatch.setattr(huawei_signer, "datetime", Slow)
    expired = error(cred.id, cred.secret)
    assert (expired.status_code, expired.error_code) == (401, "APIGW.0301")
    assert "expired" in expired.error_msg


def test_no_credentials_and_bad_tokens_are_401(seeded: Live) -> None:
    path = f"/v5/{PROJECT}/common/tasks/batch-query"
    with seeded.http() as client:
        for headers in ({}, {"X-Auth-Token": "ltk_nope.nope"}):
            response = client.post(path, json={"task_type": "x"}, headers=headers)
            assert response.status_code == 401
            assert response.json()["error_code"] == "APIGW.0301"


def test_another_project_is_403(seeded: Live, cred: Issued) -> None:
    error = refused(lambda: tasks(client_for(seeded, cred.id, cred.secret, "project-other")))
    assert error.status_code == 403 and error.error_code == "HSS.0003"


def test_a_revoked_access_key_stops_at_once(live: Live) -> None:
    issued = live.credential("huawei", PROJECT)
    sdk = client_for(live, issued.id, issued.secret)
    assert tasks(sdk).total_num == 0
    CredentialStore(live.settings).revoke(issued.id)
    assert refused(lambda: tasks(sdk)).status_code == 401
