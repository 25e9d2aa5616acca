"""The emulator's Alibaba credential services, spoken to directly over HTTP (the vendor's request and answer
shapes; the signing side is the library's own helper, ``alibabacloud_credentials/utils/parameter_helper.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from alibabacloud_credentials.utils import parameter_helper as ph
from helpers import PAI_KEY, PAI_SECRET, build_seed

from airflow_provider_modelreg.auth import AcsV3Auth
from modelreg_emulator.ali_credentials import make_oidc_token

ROLE_ARN = "acs:ram::1234567890123456:role/airflow-pai"
PROVIDER_ARN = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-cluster"


@pytest.fixture
def emu(make_emulator: Callable[..., Any]) -> Any:
    return make_emulator(build_seed())


def _stamp(delta: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def assume_role_query(
    key_id: str = PAI_KEY, secret: str = PAI_SECRET, token: str | None = None, **overrides: str
) -> dict[str, str]:
    """AssumeRole's query as ``RamRoleArnCredentialsProvider._refresh_credentials`` builds and signs it."""
    query = {
        "Action": "AssumeRole",
        "Format": "JSON",
        "Version": "2015-04-01",
        "DurationSeconds": "3600",
        "RoleArn": ROLE_ARN,
        "RoleSessionName": "credentials-python-1",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "Timestamp": _stamp(),
        "SignatureNonce": ph.get_uuid(),
        "AccessKeyId": key_id,
        **overrides,
    }
    if token:
        query["SecurityToken"] = token
    query["Signature"] = ph.sign_string(ph.compose_string_to_sign("GET", query), secret + "&")
    return query


def test_assume_role_signed_by_the_library_issues_a_key_pai_accepts(emu: Any) -> None:
    answer = httpx.get(emu.url + "/", params=assume_role_query())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"RequestId", "AssumedRoleUser", "Credentials"}
    assert body["AssumedRoleUser"]["Arn"] == ROLE_ARN + "/credentials-python-1"
    creds = body["Credentials"]
    assert set(creds) == {"AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"}
    assert creds["Expiration"].endswith("Z") and creds["AccessKeyId"].startswith("STS.")
    auth = AcsV3Auth(creds["AccessKeyId"], creds["AccessKeySecret"], security_token=creds["SecurityToken"])
    got = httpx.get(
        emu.url + "/api/v1/models/m-main/versions/1.0.0",
        headers={"x-acs-action": "GetModelVersion", "x-acs-version": "2021-02-04"},
        auth=auth,
    )
    assert got.status_code == 200
    assert emu.request_log.count("sts.AssumeRole", authenticated=True) == 1
    # the issued key may itself assume a role, with its token
    again = httpx.get(
        emu.url + "/",
        params=assume_role_query(creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"]),
    )
    assert again.status_code == 200
    wrong = httpx.get(emu.url + "/", params=assume_role_query(creds["AccessKeyId"], creds["AccessKeySecret"], "x"))
    assert wrong.json()["Code"] == "InvalidSecurityToken.MismatchWithAccessKey"


def test_assume_role_in_a_form_body(emu: Any) -> None:
    query = assume_role_query()
    # a POST is signed over method POST
    query.pop("Signature")
    query["Signature"] = ph.sign_string(ph.compose_string_to_sign("POST", query), PAI_SECRET + "&")
    answer = httpx.post(emu.url + "/", data=query)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"secret": "not-the-secret"}, 400, "SignatureDoesNotMatch"),
        ({"key_id": "LTAIunknown"}, 404, "InvalidAccessKeyId.NotFound"),
        ({"RoleArn": "acs:ram::123:user/x"}, 400, "InvalidParameter.RoleArn"),
        ({"RoleSessionName": "a!b"}, 400, "InvalidParameter.RoleSessionName"),
        ({"DurationSeconds": "600"}, 400, "InvalidParameter.DurationSeconds"),
        ({"Timestamp": _stamp(-3600)}, 400, "InvalidTimeStamp.Expired"),
        ({"Version": "2014-01-01"}, 400, "InvalidVersion"),
    ],
)
def test_assume_role_refusals_have_the_services_shape(emu: Any, change: dict[str, str], status: int, code: str) -> None:
    answer = httpx.get(emu.url + "/", params=assume_role_query(**change))
    assert answer.status_code == status
    body = answer.json()
    assert body["Code"] == code
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["HostId"] == "sts.aliyuncs.com"
    assert emu.request_log.count("sts.AssumeRole", authenticated=False) == 1


def test_a_nonce_is_spent_once(emu: Any) -> None:
    nonce = str(uuid.uuid4())
    assert httpx.get(emu.url + "/", params=assume_role_query(SignatureNonce=nonce)).status_code == 200
    again = httpx.get(emu.url + "/", params=assume_role_query(SignatureNonce=nonce))
    assert again.json()["Code"] == "SignatureNonceUsed"


def oidc_query(token: str, **overrides: str) -> dict[str, str]:
    """AssumeRoleWithOIDC's query as ``OIDCRoleArnCredentialsProvider._refresh_credentials`` builds it."""
    return {
        "Action": "AssumeRoleWithOIDC",
        "Format": "JSON",
        "Version": "2015-04-01",
        "DurationSeconds": "3600",
        "RoleArn": ROLE_ARN,
        "OIDCProviderArn": PROVIDER_ARN,
        "OIDCToken": token,
        "RoleSessionName": "credentials-python-1",
        "Timestamp": _stamp(),
        **overrides,
    }


def test_assume_role_with_oidc(emu: Any) -> None:
    answer = httpx.get(emu.url + "/", params=oidc_query(make_oidc_token("system:serviceaccount:ns:sa")))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"RequestId", "AssumedRoleUser", "Credentials", "OIDCTokenInfo"}
    assert body["OIDCTokenInfo"]["Subject"] == "system:serviceaccount:ns:sa"
    assert set(body["Credentials"]) == {"AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"}


@pytest.mark.parametrize(
    ("token", "overrides", "code"),
    [
        (make_oidc_token(lifetime=-5), {}, "AuthenticationFail.OIDCToken.Expired"),
        ("a.b", {}, "AuthenticationFail.OIDCToken.Invalid"),
        (make_oidc_token()[:-4] + "AAAA", {}, "AuthenticationFail.OIDCToken.InvalidSignature"),
        (make_oidc_token(), {"OIDCProviderArn": "acs:ram::1:role/x"}, "InvalidParameter.OIDCProviderArn"),
        (make_oidc_token(), {"RoleArn": "arn:aws:iam::1:role/x"}, "InvalidParameter.RoleArn"),
    ],
)
def test_assume_role_with_oidc_refusals(emu: Any, token: str, overrides: dict[str, str], code: str) -> None:
    answer = httpx.get(emu.url + "/", params=oidc_query(token, **overrides))
    assert answer.status_code in (400, 401)
    assert answer.json()["Code"] == code


def test_an_unknown_action_is_refused(emu: Any) -> None:
    answer = httpx.get(emu.url + "/", params={"Action": "GetCallerIdentity"})
    assert answer.json()["Code"] == "InvalidAction.NotFound"


def test_metadata_is_hardened(emu: Any) -> None:
    role_list = emu.url + "/latest/meta-data/ram/security-credentials/"
    assert httpx.get(role_list).status_code == 401
    assert httpx.put(emu.url + "/latest/api/token").status_code == 400  # the TTL header is required
    token = httpx.put(emu.url + "/latest/api/token", headers={"X-aliyun-ecs-metadata-token-ttl-seconds": "21600"}).text
    headers = {"X-aliyun-ecs-metadata-token": token}
    assert httpx.get(role_list, headers={"X-aliyun-ecs-metadata-token": "forged"}).status_code == 401
    role = httpx.get(role_list, headers=headers).text
    assert role == "EmulatorEcsRole"
    assert httpx.get(role_list + role).status_code == 401
    assert httpx.get(role_list + "Other", headers=headers).status_code == 404
    body = httpx.get(role_list + role, headers=headers).json()
    assert body["Code"] == "Success"
    assert set(body) == {"Code", "AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration", "LastUpdated"}
    assert emu.request_log.count("ecs.RoleCredentials", authenticated=True) == 1


def test_the_metadata_role_is_configurable(emu: Any) -> None:
    emu.config.ecs_role_name = "CustomRole"
    token = httpx.put(emu.url + "/latest/api/token", headers={"X-aliyun-ecs-metadata-token-ttl-seconds": "60"}).text
    listed = httpx.get(
        emu.url + "/latest/meta-data/ram/security-credentials/", headers={"X-aliyun-ecs-metadata-token": token}
    )
    assert listed.text == "CustomRole"


def test_credentials_uri_and_the_lifetime_setting(make_emulator: Callable[..., Any]) -> None:
    emu = make_emulator(build_seed(), credential_lifetime=120)
    body = httpx.get(emu.url + "/ecs-credentials-uri").json()
    assert body["Code"] == "Success"
    expires = datetime.strptime(body["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    left = (expires - datetime.now(timezone.utc)).total_seconds()
    assert 100 < left <= 120
