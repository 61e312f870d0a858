"""Server-side checks of the vendors' HMAC request signatures.

Both mirror what the vendor's own client signs: Tencent Cloud API 3.0 `TC3-HMAC-SHA256`
(tencentcloud/common/abstract_client.py, `_build_req_with_tc3_signature`) and Huawei
Cloud `SDK-HMAC-SHA256` (huaweicloudsdkcore/signer/signer.py, `Signer.sign`). Parsing and
the arithmetic live here; which secret to use and what to answer is the dialect's call.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, quote, unquote

TC3_ALGORITHM: Final = "TC3-HMAC-SHA256"
HUAWEI_ALGORITHM: Final = "SDK-HMAC-SHA256"
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
UNSIGNED: Final = "UNSIGNED-PAYLOAD"

_TC3: Final = re.compile(
    r"^TC3-HMAC-SHA256 +Credential=(?P<id>[^/,\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<service>[a-z0-9]+)/tc3_request, *SignedHeaders=(?P<headers>[a-z0-9;._-]+), *"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_HUAWEI: Final = re.compile(
    r"^SDK-HMAC-SHA256 +Access=(?P<id>[^,\s]+), *SignedHeaders=(?P<headers>[a-z0-9;._-]+), *"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True, slots=True)
class Tc3Authorization:
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True, slots=True)
class HuaweiAuthorization:
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_tc3(header: str) -> Tc3Authorization | None:
    """The parts of a TC3 `Authorization` header, or None if it is not one."""
    match = _TC3.match(header.strip())
    if match is None:
        return None
    return Tc3Authorization(
        secret_id=match["id"],
        date=match["date"],
        service=match["service"],
        signed_headers=tuple(match["headers"].split(";")),
        signature=match["signature"],
    )


def parse_huawei(header: str) -> HuaweiAuthorization | None:
    """The parts of an SDK-HMAC-SHA256 `Authorization` header, or None if it is not one."""
    match = _HUAWEI.match(header.strip())
    if match is None:
        return None
    return HuaweiAuthorization(
        access_key=match["id"],
        signed_headers=tuple(match["headers"].split(";")),
        signature=match["signature"],
    )


def _canonical_headers(headers: Mapping[str, str], signed: tuple[str, ...]) -> str | None:
    """`name:value\\n` per signed header (None if one of them was not sent)."""
    lines = []
    for name in signed:
        value = headers.get(name)
        if value is None:
            return None
        lines.append(f"{name}:{value.strip()}\n")
    return "".join(lines)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def tc3_signature(
    auth: Tc3Authorization,
    secret_key: str,
    *,
    method: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    timestamp: str,
) -> str | None:
    """The TC3 signature the request should carry (None if a signed header is missing)."""
    canonical_headers = _canonical_headers(headers, auth.signed_headers)
    if canonical_headers is None:
        return None
    unsigned = headers.get("x-tc-content-sha256") == UNSIGNED
    payload = _sha256(UNSIGNED) if unsigned else _sha256(body)
    canonical = "\n".join(
        [method, "/", query, canonical_headers, ";".join(auth.signed_headers), payload]
    )
    scope = f"{auth.date}/{auth.service}/tc3_request"
    to_sign = f"{TC3_ALGORITHM}\n{timestamp}\n{scope}\n{_sha256(canonical)}"
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), auth.date), auth.service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def huawei_signature(
    auth: HuaweiAuthorization,
    secret_key: str,
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    sdk_date: str,
) -> str | None:
    """The SDK-HMAC-SHA256 signature the request should carry (None if a signed header
    is missing). The SK is the HMAC key itself: no key derivation."""
    canonical_headers = _canonical_headers(headers, auth.signed_headers)
    if canonical_headers is None:
        return None
    uri = "/".join(quote(segment, safe="~") for segment in unquote(path).split("/"))
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    canonical_query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)
    payload = (headers.get("x-sdk-content-sha256") or _sha256(body)) if body else EMPTY_SHA256
    canonical = "\n".join(
        [method, uri, canonical_query, canonical_headers, ";".join(auth.signed_headers), payload]
    )
    to_sign = f"{HUAWEI_ALGORITHM}\n{sdk_date}\n{_sha256(canonical)}"
    return hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def same_signature(expected: str | None, sent: str) -> bool:
    """Constant-time comparison of a computed and a sent signature."""
    return expected is not None and hmac.compare_digest(expected, sent)
