"""Byte-for-byte proof of the request signing against the 23 vectors produced by the official SDKs.

``tests/data/vectors.json`` holds the vectors, as the official SDKs produced them (from the vendors' protocol notes,
which are not part of this repository). Every vector is checked twice:

* end to end: an ``httpx.Request`` carrying exactly the headers the SDK signed, minus the ones our auth adds itself,
  is sent through an ``httpx.Client`` (``MockTransport``) with our ``httpx.Auth`` pinned to the vector's date and
  nonce; the request that reaches the transport must carry the vector's ``Authorization`` and wire URL, and every
  header of the vector with the value the SDK handed to its HTTP library;
* intermediates: ``acs3_sign`` / ``sdk_hmac_sign`` must reproduce the vector's canonical request, string to sign,
  signed-header list and signature.

"signer" vectors have no URL: the wire URL is built as our hooks build it (Alibaba: httpx ``params=``, i.e. form
encoding; Huawei: the canonical query string appended verbatim, list values expanded, booleans as true/false).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_modelreg.auth import (
    AcsV3Auth,
    HuaweiAkSkAuth,
    acs3_sign,
    sdk_canonical_query,
    sdk_canonical_uri,
    sdk_hashed_payload,
    sdk_hmac_sign,
    sdk_signable,
)

VECTORS_PATH = Path(__file__).parent / "data" / "vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
ALIBABA: list[dict[str, Any]] = VECTORS["alibaba"]
HUAWEI: list[dict[str, Any]] = VECTORS["huawei"]

#: Headers our auth classes set themselves (so the request handed to them must not carry them already).
ALI_AUTH_HEADERS = {
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
    "x-acs-accesskey-id",
    "x-acs-security-token",
    "authorization",
}
HW_AUTH_HEADERS = {"x-sdk-date", "x-project-id", "x-security-token", "authorization"}


def test_vector_file_is_complete() -> None:
    """Guards against a truncated or edited copy: all 23 vectors, unique ids, both kinds present."""
    assert len(ALIBABA) == 12
    assert len(HUAWEI) == 11
    ids = [v["id"] for v in ALIBABA + HUAWEI]
    assert len(set(ids)) == 23
    assert {v["kind"] for v in ALIBABA} == {"client", "signer"}
    assert {v["kind"] for v in HUAWEI} == {"client", "signer"}


# ------------------------------------------------------------------------------------------------------- helpers


def _send(request: httpx.Request, auth: httpx.Auth) -> httpx.Request:
    """Send through a real ``httpx.Client`` (default headers, auth flow) and return what reaches the transport."""
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        client.send(request, auth=auth)
    assert len(seen) == 1
    return seen[0]


def _fixed(value: str) -> Callable[[], str]:
    return lambda: value


def _clock(value: str, fmt: str) -> Callable[[], datetime]:
    moment = datetime.strptime(value, fmt).replace(tzinfo=timezone.utc)
    return lambda: moment


def _body(vector: dict[str, Any]) -> bytes:
    body = vector["request"]["body"]
    return b"" if body is None else body.encode("utf-8")


def _non_null(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}


def _without(headers: dict[str, Any], names: set[str]) -> dict[str, str]:
    return {k: v for k, v in _non_null(headers).items() if k.lower() not in names}


def _assert_sent_headers(sent: httpx.Request, expected: dict[str, Any]) -> None:
    """Every header the SDK handed to its HTTP library goes out with the same value (HTTP trims OWS)."""
    for name, value in _non_null(expected).items():
        assert sent.headers.get_list(name) == [value.strip()], name


# ------------------------------------------------------------------------------------------------------- Alibaba


def _ali_request(vector: dict[str, Any]) -> tuple[httpx.Request, str]:
    """The request our hook would build, and the exact wire URL it must go out with."""
    req = vector["request"]
    inputs = vector["inputs"]
    if vector["kind"] == "client":
        headers = _without(vector["headers"], ALI_AUTH_HEADERS)
        # The SDK's wire URL is reproduced by httpx ``params=`` (form encoding, ``+`` for space) ...
        rebuilt = httpx.Request(
            req["method"], f"https://{inputs['endpoint']}{req['canonical_uri']}", params=req["query"]
        )
        assert str(rebuilt.url) == req["url"]
        # ... and the request goes out with exactly that URL.
        return httpx.Request(req["method"], req["url"], headers=headers, content=_body(vector)), req["url"]
    # Signer vectors: null header/query values are dropped (the SDK drops them too). For ali-11 that removes the
    # null lower-case duplicates of ``X-Acs-Action``/``Accept``, so what is left is an ordinary httpx request.
    headers = _without(inputs["headers_before_signing"], ALI_AUTH_HEADERS)
    host = inputs["headers_before_signing"]["host"]
    request = httpx.Request(
        req["method"], f"https://{host}{inputs['pathname']}", params=_non_null(req["query"]), headers=headers
    )
    return request, str(request.url)


@pytest.mark.parametrize("vector", ALIBABA, ids=[v["id"] for v in ALIBABA])
def test_alibaba_vector_through_httpx(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    auth = AcsV3Auth(
        inputs["access_key_id"],
        inputs["access_key_secret"],
        security_token=inputs.get("security_token"),
        clock=_clock(inputs.get("x-acs-date", VECTORS["fixed_inputs"]["alibaba_x_acs_date"]), "%Y-%m-%dT%H:%M:%SZ"),
        nonce=_fixed(inputs.get("x-acs-signature-nonce", VECTORS["fixed_inputs"]["alibaba_nonce"])),
    )
    request, wire_url = _ali_request(vector)
    assert "authorization" not in request.headers
    sent = _send(request, auth)

    assert sent.headers["authorization"] == vector["authorization"]
    assert sent.headers["Authorization"] == vector["headers"]["Authorization"]
    assert sent.headers["x-acs-content-sha256"] == vector["hashed_payload"]
    assert str(sent.url) == wire_url
    assert sent.url.raw_path.split(b"?")[0].decode() == (vector["request"]["canonical_uri"] or "/")
    assert sent.content == _body(vector)
    _assert_sent_headers(sent, vector["headers"])


@pytest.mark.parametrize("vector", ALIBABA, ids=[v["id"] for v in ALIBABA])
def test_alibaba_vector_intermediates(vector: dict[str, Any]) -> None:
    req = vector["request"]
    # Null values are not representable in acs3_sign's str-typed input; the SDK drops them before signing.
    headers = [(k, v) for k, v in _non_null(vector["headers"]).items() if k != "Authorization"]
    canonical, string_to_sign, signed, signature = acs3_sign(
        method=req["method"],
        canonical_uri=req["canonical_uri"],
        query=[(k, str(v)) for k, v in _non_null(req["query"]).items()],
        headers=headers,
        hashed_payload=vector["hashed_payload"],
        access_key_secret=vector["inputs"]["access_key_secret"],
    )
    assert canonical == vector["canonical_request"]
    assert string_to_sign == vector["string_to_sign"]
    assert signed == vector["signed_headers"]
    assert signature == vector["signature"]
    assert vector["authorization"].endswith(f",Signature={signature}")


def test_alibaba_duplicate_case_variant_headers_through_acs3_sign() -> None:
    """Not expressible as one httpx request (it would send two headers): values sorted and joined with ``,``."""
    base = ALIBABA[0]
    headers = [(k, v) for k, v in base["headers"].items() if k != "Authorization"]
    canonical, _, signed, _ = acs3_sign(
        method="GET",
        canonical_uri="/x",
        query=[],
        headers=[*headers, ("X-Custom", " b "), ("x-custom", "a")],
        hashed_payload=base["hashed_payload"],
        access_key_secret="k",
    )
    assert "\nx-custom:a,b\n" in canonical
    names = signed.split(";")
    assert names == sorted(set(names))  # one entry per name, sorted
    assert "x-custom" in names


# ------------------------------------------------------------------------------------------------------- Huawei


def _hw_pairs(query_params: list[list[Any]]) -> list[tuple[str, str]]:
    """Our hooks' query model: lists expand to one pair per element, booleans are ``true``/``false``."""
    pairs: list[tuple[str, str]] = []
    for name, value in query_params:
        values = value if isinstance(value, list) else [value]
        for item in values:
            pairs.append((name, str(item).lower() if isinstance(item, bool) else str(item)))
    return pairs


def _hw_target(resource_path: str, query_params: list[list[Any]]) -> str:
    query = sdk_canonical_query(_hw_pairs(query_params))
    return f"{resource_path}?{query}" if query else resource_path


def _hw_request(vector: dict[str, Any]) -> tuple[httpx.Request, HuaweiAkSkAuth]:
    req = vector["request"]
    inputs = vector["inputs"]
    target = _hw_target(req["resource_path"], req["query_params"])
    assert target == req["uri"]  # our wire target is the SDK's, byte for byte
    if vector["kind"] == "client":
        origin = inputs["endpoint"]
        headers = _without(vector["headers"], HW_AUTH_HEADERS)
        project_id, token = inputs["project_id"], inputs["security_token"]
    else:
        origin = f"https://{inputs['host']}"
        before = inputs["headers_before_signing"]
        # Headers the SDK itself added while signing (Host, X-Sdk-Content-Sha256) are plain request headers for us.
        lowered = {k.lower() for k in before}
        added = {k: v for k, v in vector["headers"].items() if k.lower() not in lowered}
        headers = _without({**before, **added}, HW_AUTH_HEADERS)
        project_id = next((v for k, v in before.items() if k.lower() == "x-project-id"), None)
        token = next((v for k, v in before.items() if k.lower() == "x-security-token"), None)
    url = f"{origin}{target}"
    assert url == req["url"]
    auth = HuaweiAkSkAuth(
        inputs["ak"],
        inputs["sk"],
        project_id=project_id,
        security_token=token,
        clock=_clock(VECTORS["fixed_inputs"]["huawei_x_sdk_date"], "%Y%m%dT%H%M%SZ"),
    )
    return httpx.Request(req["method"], url, headers=headers, content=_body(vector)), auth


@pytest.mark.parametrize("vector", HUAWEI, ids=[v["id"] for v in HUAWEI])
def test_huawei_vector_through_httpx(vector: dict[str, Any]) -> None:
    request, auth = _hw_request(vector)
    assert "authorization" not in request.headers
    sent = _send(request, auth)

    assert sent.headers["authorization"] == vector["authorization"]
    assert sent.headers["Authorization"] == vector["headers"]["Authorization"]
    assert sent.url.raw_path.decode() == vector["request"]["uri"]
    assert str(sent.url) == vector["request"]["url"]
    assert sent.content == _body(vector)
    # Includes hw-11: the padded User-Agent goes out trimmed, as the SDK sends it (and as h11 requires).
    _assert_sent_headers(sent, vector["headers"])


@pytest.mark.parametrize("vector", HUAWEI, ids=[v["id"] for v in HUAWEI])
def test_huawei_vector_intermediates(vector: dict[str, Any]) -> None:
    req = vector["request"]
    headers = {k: v for k, v in vector["headers"].items() if k != "Authorization"}
    body = _body(vector)
    content_sha = next((v for k, v in headers.items() if k.lower() == "x-sdk-content-sha256"), None)
    sdk_date = next(v for k, v in headers.items() if k.lower() == "x-sdk-date")
    canonical, string_to_sign, signed, signature = sdk_hmac_sign(
        method=req["method"],
        raw_path=req["resource_path"],
        query=_hw_pairs(req["query_params"]),
        headers=[(k, v) for k, v in headers.items() if sdk_signable(k)],
        hashed_payload=sdk_hashed_payload(body, content_sha),
        sdk_date=sdk_date,
        secret_key=vector["inputs"]["sk"],
    )
    if "canonical_request" in vector:
        assert canonical == vector["canonical_request"]
    assert canonical.split("\n")[1] == sdk_canonical_uri(req["resource_path"])
    assert string_to_sign == vector["string_to_sign"]
    assert signed == vector["signed_headers"]
    assert signature == vector["signature"]
    assert vector["authorization"] == f"SDK-HMAC-SHA256 Access={vector['inputs']['ak']}, SignedHeaders={signed}, " + (
        f"Signature={signature}"
    )


def test_huawei_canonical_uri_gotchas() -> None:
    """Trailing ``/`` only in the canonical form; ``%2F`` becomes a real separator (the SDK signer's rule)."""
    assert sdk_canonical_uri("/v1/workspaces") == "/v1/workspaces/"
    assert sdk_canonical_uri("/v1/workspaces/") == "/v1/workspaces/"
    assert sdk_canonical_uri("/models/m%2F1%2A~%E4%B8%AD/versions") == "/models/m/1%2A~%E4%B8%AD/versions/"


# ----------------------------------------------------------------------------------------------- secrets, nonces


def test_repr_never_shows_secrets() -> None:
    ali = AcsV3Auth("AKID-visible", "ali-SECRET-value-123", security_token="ali-STS-token-456")
    hw = HuaweiAkSkAuth("HWAK-visible", "hw-SECRET-value-789", project_id="proj-1", security_token="hw-TOKEN-000")
    for auth, secrets, visible in (
        (ali, ("ali-SECRET-value-123", "ali-STS-token-456"), "AKID-visible"),
        (hw, ("hw-SECRET-value-789", "hw-TOKEN-000"), "HWAK-visible"),
    ):
        for text in (repr(auth), str(auth), f"{auth!r}", f"{auth}"):
            assert visible in text  # the repr is informative ...
            for secret in secrets:
                assert secret not in text  # ... but never leaks the secret or the token


def test_default_nonce_and_date_are_fresh_for_every_signing() -> None:
    auth = AcsV3Auth("AKID", "secret")
    signed = []
    for _ in range(2):
        request = httpx.Request("GET", "https://aiworkspace.cn-hangzhou.aliyuncs.com/api/v1/models")
        auth.sign(request)
        signed.append(request)
    nonces = [r.headers["x-acs-signature-nonce"] for r in signed]
    assert all(nonces) and nonces[0] != nonces[1]
    assert signed[0].headers["authorization"] != signed[1].headers["authorization"]
    # The default clock is the real UTC clock, in the SDK's format.
    date = datetime.strptime(signed[0].headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - date).total_seconds()) < 60
