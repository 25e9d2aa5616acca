"""Malformed answers of credential services (test audit, section 8, points 4 and 5): Alibaba STS, ECS metadata and a
credentials URI, Huawei metadata, STS and IAM answering 2xx with something that is not a key. Each is a
CredentialSourceError of its source naming what is wrong, not retryable (asking again repeats it), and no secret
of the answer is echoed. The services are ``httpx.MockTransport`` handlers; the sources are built as the hooks
build them. Rows that tests/test_credentials_hostile.py already covers (JSON nested too deeply, an STS answer
without ``Credentials`` for ram_role_arn, a key expired on arrival) are not repeated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import FABRIC_AK, FABRIC_SK

from airflow_provider_modelreg.credentials.alibaba import build_pai_auth, credential_config
from airflow_provider_modelreg.credentials.base import (
    CredentialSourceError,
    RefreshingCredential,
    clear_shared_credentials,
)
from airflow_provider_modelreg.credentials.huawei import HuaweiSourceSettings, build_huawei_source
from airflow_provider_modelreg.transport import RetryPolicy
from modelreg_emulator import hw_credentials as hc
from modelreg_emulator.ali_credentials import make_oidc_token

ROLE_ARN = "acs:ram::1234567890123456:role/airflow-pai"
PROVIDER_ARN = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-cluster"
#: secrets of the answers: none may appear in an error
ISSUED_SECRET = "issued-secret-value-0001"
ISSUED_TOKEN = "issued-security-token-0001"
METADATA_TOKEN = "metadata-session-token-0001"
SECRETS = (ISSUED_SECRET, ISSUED_TOKEN, METADATA_TOKEN)
THREE = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001, min_delay=0.0)
ALI_ENV = ("ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_ECS_METADATA", "ALIBABA_CLOUD_STS_REGION")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ALI_ENV:
        monkeypatch.delenv(name, raising=False)
    clear_shared_credentials()
    yield
    clear_shared_credentials()


class Service:
    """A credential service as an ``httpx.MockTransport`` handler: a session token on the metadata token paths,
    ``body`` (with ``status``) on every other path; every request is recorded."""

    def __init__(self, status: int, body: bytes, token: bytes = METADATA_TOKEN.encode()) -> None:
        self.status, self.body, self.token = status, body, token
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path in ("/latest/api/token", "/meta-data/latest/api/token"):
            return httpx.Response(200, content=self.token, headers={"content-type": "text/plain"})
        return httpx.Response(self.status, content=self.body, headers={"content-type": "application/json"})

    def options(self) -> dict[str, Any]:
        return {
            "retry": THREE,
            "transport": httpx.MockTransport(self),
            "async_transport": httpx.MockTransport(self),
        }


def _expiration(hours: int = 1) -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ali_fields(**over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "AccessKeyId": "STS.issued0001",
        "AccessKeySecret": ISSUED_SECRET,
        "SecurityToken": ISSUED_TOKEN,
        "Expiration": _expiration(),
    }
    fields.update(over)
    return {k: v for k, v in fields.items() if v is not None}


def _assert_typed(err: CredentialSourceError, kind: str, expected: str) -> None:
    text = str(err)
    assert err.source == kind, text
    assert text.startswith(f"credential source {kind}: "), text
    assert expected in text, text
    assert err.retryable is False, text
    for secret in SECRETS:
        assert secret not in text and secret not in repr(err) and secret not in err.step, (secret, text)


# ------------------------------------------------------------------------------------------------ Alibaba


def ali_credential(kind: str, service: Service, token_file: Path) -> RefreshingCredential:
    url = "http://127.0.0.1:9"
    extras: dict[str, Any] = {
        "ram_role_arn": {"credential_source": "ram_role_arn", "role_arn": ROLE_ARN, "sts_endpoint": url},
        "oidc_role_arn": {
            "credential_source": "oidc_role_arn",
            "role_arn": ROLE_ARN,
            "oidc_provider_arn": PROVIDER_ARN,
            "oidc_token_file": str(token_file),
            "sts_endpoint": url,
        },
        "ecs_ram_role": {"credential_source": "ecs_ram_role", "metadata_endpoint": url, "role_name": "MyRole"},
        "credentials_uri": {"credential_source": "credentials_uri", "credentials_uri": url + "/api/v1/credentials"},
    }[kind]
    keyed = kind == "ram_role_arn"
    config = credential_config("LTAIbasekey000000001" if keyed else None, "base-secret" if keyed else None, extras)
    auth = build_pai_auth(config, service.options(), env={})
    assert auth.credential is not None
    return auth.credential


def _sts(body: Any) -> bytes:
    return json.dumps(body).encode()


def _success(**over: Any) -> bytes:
    return json.dumps({"Code": "Success", **_ali_fields(**over)}).encode()


STS = ["ram_role_arn", "oidc_role_arn"]
LOCAL = ["ecs_ram_role", "credentials_uri"]
#: (kinds, row id, answer body, what the message says)
ALI_ROWS: list[tuple[list[str], str, bytes, str]] = [
    (STS + LOCAL, "not JSON", b"<html>Service Unavailable</html>", "the answer is not JSON"),
    (STS + LOCAL, "a JSON array", b"[1, 2]", "not a JSON object"),
    (STS + LOCAL, "a JSON string", b'"Success"', "not a JSON object"),
    (["oidc_role_arn"], "no Credentials", _sts({"RequestId": "r-1"}), "no Credentials"),
    (STS, "Credentials not an object", _sts({"RequestId": "r-1", "Credentials": "x"}), "no Credentials"),
    (STS, "Expiration not a time", _sts({"Credentials": _ali_fields(Expiration="tomorrow")}), "Expiration is not"),
    (STS, "Expiration missing", _sts({"Credentials": _ali_fields(Expiration=None)}), "Expiration is not"),
    (STS, "AccessKeyId missing", _sts({"Credentials": _ali_fields(AccessKeyId=None)}), "AccessKeyId missing"),
    (
        STS,
        "AccessKeySecret with a newline",
        _sts({"Credentials": _ali_fields(AccessKeySecret=ISSUED_SECRET + "\n")}),
        "AccessKeySecret missing or not printable",
    ),
    (STS, "SecurityToken a number", _sts({"Credentials": _ali_fields(SecurityToken=7)}), "SecurityToken missing"),
    (
        STS,
        "SecurityToken non-ASCII",
        _sts({"Credentials": _ali_fields(SecurityToken=ISSUED_TOKEN + "\u00e9")}),
        "SecurityToken missing or not printable",
    ),
    (LOCAL, "Code not Success", _sts({"Code": "Failed", **_ali_fields()}), "Code is 'Failed', not 'Success'"),
    (LOCAL, "Code missing", _sts(_ali_fields()), "Code is 'None', not 'Success'"),
    (LOCAL, "Expiration not a time", _success(Expiration="2030-13-45"), "Expiration is not"),
    (LOCAL, "AccessKeySecret missing", _success(AccessKeySecret=None), "AccessKeySecret missing"),
    (
        LOCAL,
        "AccessKeyId with a control character",
        _success(AccessKeyId="STS.id\x01"),
        "AccessKeyId missing or not printable",
    ),
]
ALI_CASES = [(kind, row, body, text) for kinds, row, body, text in ALI_ROWS for kind in kinds]


@pytest.mark.parametrize(("kind", "row", "body", "expected"), ALI_CASES, ids=[f"{c[0]}-{c[1]}" for c in ALI_CASES])
def test_a_malformed_alibaba_answer_is_typed_and_echoes_no_secret(
    kind: str, row: str, body: bytes, expected: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "oidc-token"
    token_file.write_text(make_oidc_token())
    service = Service(200, body)
    credential = ali_credential(kind, service, token_file)
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    _assert_typed(caught.value, kind, expected)
    asked = len(service.paths)
    with pytest.raises(CredentialSourceError) as again:
        asyncio.run(credential.aget())
    _assert_typed(again.value, kind, expected)
    assert len(service.paths) == 2 * asked  # the answer was read once per renewal: a 200 is not retried


@pytest.mark.parametrize("token", [b"", b"  \n", b"tok\x01en"], ids=["empty", "blank", "control character"])
def test_an_empty_ecs_metadata_token_is_typed_and_nothing_more_is_asked(token: bytes, tmp_path: Path) -> None:
    """Hardened mode: the session token is required; an empty or unprintable one ends the flow at once (the key
    is never asked for without a token, unlike the library's fall-back)."""
    service = Service(200, _success(), token=token)
    credential = ali_credential("ecs_ram_role", service, tmp_path / "unused")
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    _assert_typed(caught.value, "ecs_ram_role", "ECS metadata token: the answer is empty or not printable")
    assert "tok\x01en" not in str(caught.value)
    assert service.paths == ["/latest/api/token"]


# ------------------------------------------------------------------------------------------------ Huawei


def hw_credential(kind: str, service: Service, token_file: Path) -> RefreshingCredential:
    url = "http://127.0.0.1:9"
    settings = {
        "metadata": HuaweiSourceSettings(metadata_endpoint=url),
        "oidc": HuaweiSourceSettings(
            sts_endpoint=url,
            provider_urn=hc.DEMO_PROVIDER_URN,
            agency_urn=hc.DEMO_AGENCY_URN,
            token_file=str(token_file),
        ),
        "agency": HuaweiSourceSettings(
            iam_endpoint=url,
            access_key=FABRIC_AK,
            secret_key=FABRIC_SK,
            agency_name=hc.DEMO_AGENCY,
            agency_domain_name=hc.DEMO_DOMAIN_NAME,
            caller_domain_id=hc.DEMO_CALLER_DOMAIN_ID,
        ),
    }[kind]
    return RefreshingCredential(build_huawei_source(kind, settings, service.options()))


def _hw(**over: Any) -> bytes:
    credential: dict[str, Any] = {
        "access": "HWISSUED0001",
        "secret": ISSUED_SECRET,
        "securitytoken": ISSUED_TOKEN,
        "expires_at": (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
    }
    credential.update(over)
    return json.dumps({"credential": {k: v for k, v in credential.items() if v is not None}}).encode()


HW_ROWS: list[tuple[str, bytes, str]] = [
    ("not JSON", b"<html>Bad Gateway</html>", "the answer is not JSON"),
    ("a JSON array", b"[1, 2]", "answer is not a JSON object"),
    ("credential not an object", b'{"credential": "x"}', "answer lacks credential.access, credential.secret"),
    ("secret missing", _hw(secret=None), "answer lacks credential.secret (or it is not printable ASCII)"),
    ("access a number", _hw(access=12), "answer lacks credential.access"),
    ("securitytoken with a newline", _hw(securitytoken=ISSUED_TOKEN + "\r\n"), "lacks credential.securitytoken"),
    ("expires_at missing", _hw(expires_at=None), "credential.expires_at is missing or not an ISO 8601 time"),
    ("expires_at not a time", _hw(expires_at="soon"), "credential.expires_at is missing or not an ISO 8601 time"),
    ("expires_at a number", _hw(expires_at=4102444800), "credential.expires_at is missing or not an ISO 8601 time"),
]
HW_CASES = [(kind, *row) for row in HW_ROWS for kind in ("metadata", "oidc", "agency")]


@pytest.mark.parametrize(("kind", "row", "body", "expected"), HW_CASES, ids=[f"{c[0]}-{c[1]}" for c in HW_CASES])
def test_a_malformed_huawei_answer_is_typed_and_echoes_no_secret(
    kind: str, row: str, body: bytes, expected: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "id-token"
    token_file.write_text(hc.DEMO_ID_TOKEN)
    service = Service(200, body)
    credential = hw_credential(kind, service, token_file)
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    _assert_typed(caught.value, kind, expected)
    with pytest.raises(CredentialSourceError) as again:
        asyncio.run(credential.aget())
    _assert_typed(again.value, kind, expected)


@pytest.mark.parametrize("token", [b"", b" \n "], ids=["empty", "blank"])
def test_an_empty_huawei_metadata_token_is_typed_and_the_key_is_not_asked(token: bytes, tmp_path: Path) -> None:
    """A 200 to the token request with nothing in it is not "no token mode" (that is a 404/405/503): an error,
    and the securitykey is not asked for without the token."""
    service = Service(200, _hw(), token=token)
    credential = hw_credential("metadata", service, tmp_path / "unused")
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    _assert_typed(caught.value, "metadata", "metadata token: empty token")
    assert caught.value.http_status == 200
    assert service.paths == ["/meta-data/latest/api/token"]
