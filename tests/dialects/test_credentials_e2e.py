"""`ledger credentials` as real processes beside `ledger serve` on the embedded default: the
server key generated in the data dir is shared, and a revoke works at once."""

from __future__ import annotations

import stat

import pytest
from tencentcloud.ciam.v20220331 import ciam_client, models  # type: ignore[import-untyped]
from tencentcloud.common.credential import Credential  # type: ignore[import-untyped]
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # type: ignore[import-untyped]
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped]
from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped]

from ledger.credentials import KEY_FILE
from tests.e2e.conftest import embedded  # noqa: F401  (the fixture)
from tests.e2e.processes import Ledger

pytestmark = pytest.mark.slow


def env_lines(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines())


def test_credentials_from_the_command_line_sign_requests_to_the_server(embedded: Ledger) -> None:  # noqa: F811
    served = embedded.serve()
    served.wait_ready()
    issued = env_lines(
        embedded.check("credentials", "create", "--dialect", "tencent", "--tenant", "store-1")
    )
    assert set(issued) == {"DIALECT", "TENANT", "SECRET_ID", "SECRET_KEY"}
    key_file = embedded.cwd / "data" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    profile = ClientProfile(
        httpProfile=HttpProfile(endpoint=f"127.0.0.1:{served.port}", protocol="http")
    )
    client = ciam_client.CiamClient(
        Credential(issued["SECRET_ID"], issued["SECRET_KEY"]), "ap-guangzhou", profile
    )
    request = models.ListJobsRequest()
    request.UserStoreId = "store-1"
    assert client.ListJobs(request).JobSet == []

    assert embedded.check("credentials", "revoke", issued["SECRET_ID"]) == (
        f"revoked {issued['SECRET_ID']}\n"
    )
    with pytest.raises(TencentCloudSDKException) as refused:
        client.ListJobs(request)
    assert refused.value.get_code() == "AuthFailure.SecretIdNotFound"
    listed = embedded.check("credentials", "list")
    assert issued["SECRET_ID"] in listed and issued["SECRET_KEY"] not in listed
    assert served.stop() == 0
