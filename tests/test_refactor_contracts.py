"""What this round's shared bases (issue 21) keep of the classes they replaced, as the review found it: no signer
passes a request through unsigned, the STS sources still read out their role, a misspelt Fabric EP option fails at
the call, and a watcher's hub gets checked request settings."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from airflow_provider_modelreg.auth import AcsV3Auth, AlibabaKeyAuth
from airflow_provider_modelreg.credentials.alibaba.sources import AssumedRole, OidcRoleArnSource, RamRoleArnSource


def test_the_alibaba_key_signer_base_is_abstract_and_its_signers_sign() -> None:
    with pytest.raises(TypeError):
        AlibabaKeyAuth("id", "secret")  # type: ignore[abstract]
    request = httpx.Request("GET", "https://pai.example/api/v1/models")
    signed = next(AcsV3Auth("id", "secret").auth_flow(request))
    assert signed.headers["Authorization"].startswith("ACS3-HMAC-SHA256 Credential=id,")


def test_the_sts_sources_read_out_the_role_they_ask_for() -> None:
    role = AssumedRole(role_arn="acs:ram::1:role/r", role_session_name="s", duration_seconds=900, policy="{}")
    sts: Any = object()  # never called: nothing here sends
    ram = RamRoleArnSource(sts=sts, base_key_digest="d", role=role)
    oidc = OidcRoleArnSource(sts=sts, role=role, oidc_provider_arn="acs:ram::1:oidc-provider/p", oidc_token_file="t")
    for source in (ram, oidc):
        assert (source.role_arn, source.role_session_name, source.duration_seconds, source.policy) == (
            "acs:ram::1:role/r",
            "s",
            900,
            "{}",
        )
    assert "{}" not in repr(role)  # the policy stays out of the repr


def test_a_misspelt_fabric_ep_update_option_fails_at_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_modelreg.hooks.fabric_ep import FabricEpHook

    # a connection without a workspace: the option is refused before the workspace is looked for
    monkeypatch.setenv("AIRFLOW_CONN_FABRIC_DEFAULT", '{"conn_type": "huaweicloud_fabric", "extra": {}}')
    with pytest.raises(TypeError, match=r"update_instance.*'verison_id'"):
        FabricEpHook().update_instance("i-1", verison_id="x")  # type: ignore[call-arg]


def test_a_watchers_hub_gets_checked_request_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_modelreg.errors import RegistryInputError
    from airflow_provider_modelreg.triggers.watcher import PaiWatchProducer

    async def settings(kwargs: dict[str, Any]) -> Any:
        hub = PaiWatchProducer.acquire_hub(kwargs, 1.0)
        try:
            return dict(hub.overrides)
        finally:
            await hub.release(1.0)

    given = asyncio.run(settings({"pai_conn_id": "pai_x", "max_attempts": 2, "call_timeout": 30}))
    assert given["call_timeout"] == 30.0 and type(given["call_timeout"]) is float
    assert given["max_attempts"] == 2
    with pytest.raises(RegistryInputError, match="call_timeout"):
        asyncio.run(settings({"pai_conn_id": "pai_x", "call_timeout": "soon"}))
