"""The emulator's Huawei credential services, with the official ``huaweicloudsdkcore`` as the oracle.

* ``auth/internal.py`` ``MetadataAccessor.get_credential`` runs against the emulator (its hard-coded
  ``_METADATA_ENDPOINT`` class attribute pointed at it) in every metadata token mode.
* ``auth/internal.py`` ``OidcStsAccessor.get_credential`` with an ``HttpClient`` aimed at the emulator's STS.
* ``StsAccessor._process_credential`` reads the same answers as
  :func:`airflow_provider_modelreg.credentials.huawei.parse_credential`.

Every key the SDK obtains signs a Fabric call that the emulator accepts.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from helpers import FABRIC_AK, FABRIC_SK, build_seed, scratch_home

from airflow_provider_modelreg.auth import HuaweiAkSkAuth
from airflow_provider_modelreg.credentials.huawei import parse_credential
from modelreg_emulator import hw_credentials as hc
from modelreg_emulator.wire import Req


@pytest.fixture(scope="module")
def sdk() -> Any:
    """``huaweicloudsdkcore`` imported with HOME pointed at a scratch folder (its import writes ~/.huaweicloud)."""
    with scratch_home():
        import huaweicloudsdkcore.auth.internal as internal
        import huaweicloudsdkcore.exceptions.exception_handler as handler
        import huaweicloudsdkcore.http.http_client as http_client
        import huaweicloudsdkcore.http.http_config as http_config
    return type("SDK", (), {"internal": internal, "handler": handler, "http": http_client, "config": http_config})


@pytest.fixture
def emu(make_emulator: Any) -> Any:
    return make_emulator(build_seed())


def fabric_call_ok(emu: Any, access: str, secret: str, token: str | None) -> bool:
    request = httpx.Request("GET", f"{emu.url}/v1/workspaces/ws-1/models?limit=1&offset=0")
    HuaweiAkSkAuth(access, secret, security_token=token).sign(request)
    with httpx.Client() as client:
        return client.send(request).status_code == 200


def sdk_epoch(moment: datetime) -> float:
    # time_utils.get_timestamp_from_str: time.mktime of the UTC wall time (compared with mktime(utcnow()) likewise)
    return time.mktime(moment.astimezone(timezone.utc).replace(tzinfo=None).timetuple())


@pytest.mark.parametrize("mode", hc.METADATA_TOKEN_MODES)
def test_sdk_metadata_accessor_in_every_token_mode(
    mode: str, sdk: Any, emu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hc.settings(emu.registry).metadata_token_mode = mode
    monkeypatch.setattr(sdk.internal.MetadataAccessor, "_METADATA_ENDPOINT", emu.url)
    credential = sdk.internal.MetadataAccessor().get_credential()
    assert credential.access.startswith("TMP") and credential.security_token
    assert fabric_call_ok(emu, credential.access, credential.secret, credential.security_token)
    assert emu.request_log.count("hw.metadata.Token") == 1
    assert emu.request_log.count("hw.metadata.SecurityKey", authenticated=True) == 1


def test_sdk_metadata_accessor_without_agency(sdk: Any, emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    hc.settings(emu.registry).metadata_agency = False
    monkeypatch.setattr(sdk.internal.MetadataAccessor, "_METADATA_ENDPOINT", emu.url)
    with pytest.raises(Exception, match="Please configure Cloud Service Agency first"):
        sdk.internal.MetadataAccessor().get_credential()


def test_metadata_token_checks(emu: Any) -> None:
    with httpx.Client(base_url=emu.url) as client:
        assert client.put("/meta-data/latest/api/token").status_code == 400  # TTL header required
        assert (
            client.put("/meta-data/latest/api/token", headers={"X-Metadata-Token-Ttl-Seconds": "0"}).status_code == 400
        )
        token = client.put("/meta-data/latest/api/token", headers={"X-Metadata-Token-Ttl-Seconds": "60"}).text
        ok = client.get("/openstack/latest/securitykey", headers={"X-Metadata-Token": token})
        assert ok.status_code == 200 and set(ok.json()["credential"]) == {
            "access",
            "secret",
            "securitytoken",
            "expires_at",
        }
        assert client.get("/openstack/latest/securitykey", headers={"X-Metadata-Token": "forged"}).status_code == 401
        hc.settings(emu.registry).metadata_token_mode = "required"
        assert client.get("/openstack/latest/securitykey").status_code == 401


def _http_client(sdk: Any) -> Any:
    config = sdk.config.HttpConfig.get_default_config()
    return sdk.http.HttpClient(config, None, sdk.handler.DefaultExceptionHandler(), logging.getLogger("sdk"))


def test_sdk_oidc_accessor_against_the_emulator(sdk: Any, emu: Any) -> None:
    accessor = sdk.internal.OidcStsAccessor(
        provider_urn=hc.DEMO_PROVIDER_URN,
        agency_urn=hc.DEMO_AGENCY_URN,
        id_token=hc.DEMO_ID_TOKEN,
        agency_session_name="oidc-sts-session",
    )
    credential = accessor.get_credential(http_client=_http_client(sdk), sts_endpoint=emu.url)
    assert credential.access.startswith("TMP") and credential.expire_at > time.mktime(time.gmtime()) - 1
    assert fabric_call_ok(emu, credential.access, credential.secret, credential.security_token)
    refused = sdk.internal.OidcStsAccessor(
        provider_urn=hc.DEMO_PROVIDER_URN,
        agency_urn=hc.DEMO_AGENCY_URN,
        id_token="unknown-token",
        agency_session_name="s1",
    )
    with pytest.raises(Exception, match="failed to get credential from oidc sts"):
        refused.get_credential(http_client=_http_client(sdk), sts_endpoint=emu.url)


@pytest.mark.parametrize("route", ["oidc", "agency", "metadata"])
def test_answers_are_read_as_the_sdk_reads_them(route: str, sdk: Any, emu: Any) -> None:
    with httpx.Client(base_url=emu.url) as client:
        if route == "oidc":
            body = {
                "provider_urn": hc.DEMO_PROVIDER_URN,
                "agency_urn": hc.DEMO_AGENCY_URN,
                "agency_session_name": "s1",
                "id_token": hc.DEMO_ID_TOKEN,
                "duration_seconds": 900,
            }
            response = client.post("/v5/agencies/assume-with-oidc", json=body)
        elif route == "agency":
            role = {"agency_name": hc.DEMO_AGENCY, "domain_name": hc.DEMO_DOMAIN_NAME}
            payload = {"auth": {"identity": {"methods": ["assume_role"], "assume_role": role}}}
            request = client.build_request(
                "POST",
                "/v3.0/OS-CREDENTIAL/securitytokens",
                content=json.dumps(payload),
                headers={"X-Domain-Id": hc.DEMO_CALLER_DOMAIN_ID},  # as GlobalCredentials sends it
            )
            HuaweiAkSkAuth(FABRIC_AK, FABRIC_SK).sign(request)
            response = client.send(request)
        else:
            response = client.get("/openstack/latest/securitykey")
    assert response.status_code in (200, 201)
    ours = parse_credential(response, source=route, step="test", now=datetime.now(timezone.utc))
    theirs = sdk.internal.StsAccessor._process_credential(response.content)
    assert (ours.access_key_id, ours.access_key_secret, ours.security_token) == (
        theirs.access,
        theirs.secret,
        theirs.security_token,
    )
    assert ours.expires_at is not None and sdk_epoch(ours.expires_at) == theirs.expire_at


def _oidc(emu: Any, **over: Any) -> httpx.Response:
    body = {
        "provider_urn": hc.DEMO_PROVIDER_URN,
        "agency_urn": hc.DEMO_AGENCY_URN,
        "agency_session_name": "s1",
        "id_token": hc.DEMO_ID_TOKEN,
        **over,
    }
    return httpx.post(f"{emu.url}/v5/agencies/assume-with-oidc", json=body)


@pytest.mark.parametrize(
    ("over", "status", "code"),
    [
        ({"provider_urn": "iam::acct:agency:x"}, 400, "STS.0001"),
        ({"agency_urn": "acs:ram::1:role/x"}, 400, "STS.0001"),
        ({"agency_session_name": "x"}, 400, "STS.0001"),
        ({"duration_seconds": 60}, 400, "STS.0001"),
        ({"provider_urn": "iam::acct:identity-provider:other"}, 404, "STS.0002"),
        ({"id_token": "forged-token"}, 401, "STS.0003"),
    ],
)
def test_sts_oidc_errors(over: dict[str, Any], status: int, code: str, emu: Any) -> None:
    response = _oidc(emu, **over)
    assert response.status_code == status
    body = response.json()
    assert body["error_code"] == code and body["request_id"] == response.headers["x-request-id"]


def test_iam_assume_role_errors(emu: Any) -> None:
    url = f"{emu.url}/v3.0/OS-CREDENTIAL/securitytokens"
    role = {"agency_name": hc.DEMO_AGENCY, "domain_name": hc.DEMO_DOMAIN_NAME}

    def send(payload: Any, *, signed: bool = True, domain: str | None = hc.DEMO_CALLER_DOMAIN_ID) -> httpx.Response:
        headers = {} if domain is None else {"X-Domain-Id": domain}
        request = httpx.Request("POST", url, content=json.dumps(payload), headers=headers)
        if signed:
            HuaweiAkSkAuth(FABRIC_AK, FABRIC_SK).sign(request)
        with httpx.Client() as client:
            return client.send(request)

    good = {"auth": {"identity": {"methods": ["assume_role"], "assume_role": role}}}
    unsigned = send(good, signed=False)
    assert unsigned.status_code == 401 and unsigned.json()["error_code"] == "APIG.1002"
    wrong_method = send({"auth": {"identity": {"methods": ["token"], "assume_role": role}}})
    assert wrong_method.status_code == 400 and wrong_method.json()["error"]["code"] == 400
    long = {**role, "duration_seconds": 86401}
    assert send({"auth": {"identity": {"methods": ["assume_role"], "assume_role": long}}}).status_code == 400
    other = {**role, "agency_name": "other"}
    assert send({"auth": {"identity": {"methods": ["assume_role"], "assume_role": other}}}).status_code == 403
    no_domain = send(good, domain=None)  # GlobalCredentials always sends it with AK/SK
    assert no_domain.status_code == 400 and "X-Domain-Id" in no_domain.json()["error"]["message"]
    assert send(good, domain="another-account").status_code == 401
    ok = send(good)
    assert ok.status_code == 201 and ok.json()["credential"]["expires_at"].endswith("Z")


def test_issued_keys_expire_with_the_configured_lifetime(make_emulator: Any) -> None:
    emu = make_emulator(build_seed(), credential_lifetime=120)
    answer = _oidc(emu, duration_seconds=3600).json()["credentials"]  # the lifetime caps the asked duration
    expires = datetime.fromisoformat(answer["expiration"].replace("Z", "+00:00"))
    assert 100 < (expires - datetime.now(timezone.utc)).total_seconds() <= 120


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/latest/meta-data/ram/security-credentials/role"),
        ("PUT", "/latest/api/token"),
        ("POST", "/"),
        ("POST", "/v3/auth/tokens"),
        ("GET", "/v1/workspaces/ws-1/models"),
        ("GET", "/meta-data/latest/api/token"),
    ],
)
def test_routes_do_not_collide(method: str, path: str) -> None:
    assert hc.match(method, path, Req(method, path, "", {}, b"")) is None
