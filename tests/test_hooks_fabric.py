"""FabricModelRegistryHook over real HTTP against the emulator (AK/SK and IAM token auth)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import build_seed, fabric_conn

from airflow_provider_modelreg.errors import (
    RegistryAuthError,
    RegistryNotFoundError,
)
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook


@pytest.fixture
def emu(make_emulator: Any) -> Any:
    return make_emulator(seed=build_seed(fabric_generated=1050))


@pytest.fixture(params=["aksk", "token"])
def hook(request: pytest.FixtureRequest, emu: Any, monkeypatch: pytest.MonkeyPatch) -> FabricModelRegistryHook:
    fabric_conn(monkeypatch, emu.url, auth_type=request.param)
    return FabricModelRegistryHook()


def test_page_as_the_api_returns_it(hook: FabricModelRegistryHook) -> None:
    page = hook.list_model_versions_page("fm-big", workspace_id="ws-1", offset=10, limit=7)
    assert page.total == 1050
    assert len(page.versions) == 7
    assert page.request_id


def test_list_every_version_once_newest_first(hook: FabricModelRegistryHook) -> None:
    versions = hook.list_model_versions("fm-big")
    ids = [v.id for v in versions]
    assert len(ids) == 1050 == len(set(ids)) == versions.total
    first_page = hook.list_model_versions_page("fm-big", workspace_id="ws-1", offset=0, limit=100)
    assert ids[::-1][:100] == [v.id for v in first_page.versions]  # the emulator serves oldest first
    assert [v.id for v in hook.list_model_versions("fm-big", order="ASC")] == ids[::-1]
    assert len(hook.list_model_versions("fm-big", workspace_id="ws-1", max_results=205)) == 205


async def test_async_list(hook: FabricModelRegistryHook) -> None:
    versions = await hook.alist_model_versions("fm-big", workspace_id="ws-1", page_size=100)
    assert len({v.id for v in versions}) == 1050
    found = await hook.aget_model_version("fm-1", workspace_id="ws-1", version_name="release-2")
    assert found.model_path == "obs://b/m/2/"
    await hook.aclose()


def test_get_by_id_and_exact_name(hook: FabricModelRegistryHook) -> None:
    by_id = hook.get_model_version("fm-1", workspace_id="ws-1", version_id="00000000-0000-4000-8000-000000000002")
    assert by_id.name == "release-2"
    assert (
        hook.get_model_version("fm-1", workspace_id="ws-1", version_name="release-2").id == by_id.id
    )  # valid fuzzy filter
    assert (
        hook.get_model_version("fm-1", workspace_id="ws-1", version_name="1.0.0").model_path == "obs://b/m/3/"
    )  # not a valid filter
    assert (
        hook.get_model_version("fm-1", workspace_id="ws-1", version_name="v1").model_path == "obs://b/m/1/"
    )  # too short a filter
    ref = by_id.to_ref(workspace_id="ws-1", model_id="fm-1", region=hook.region).to_xcom()
    assert ref["uri"] == "obs://b/m/2/" and ref["approval_status"] is None and ref["base_model_type"] == "QWEN_2_72B"
    with pytest.raises(RegistryNotFoundError):
        hook.get_model_version(
            "fm-1", workspace_id="ws-1", version_name="release"
        )  # fuzzy match only: not this version


def test_list_models_and_test_connection(hook: FabricModelRegistryHook) -> None:
    assert {m.id for m in hook.list_models()} == {"fm-1", "fm-big"}
    ok, message = hook.test_connection()
    assert ok, message


def test_test_connection_needs_workspace(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fabric_conn(monkeypatch, emu.url, workspace_id=None)
    ok, message = FabricModelRegistryHook().test_connection()
    assert not ok and "workspace_id" in message


def test_wrong_sk_is_auth_error(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fabric_conn(monkeypatch, emu.url, password="not-the-sk")
    with pytest.raises(RegistryAuthError) as err:
        FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1")
    assert err.value.code == "APIG.0301" and err.value.http_status == 401 and err.value.request_id


def test_wrong_iam_password_is_auth_error(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fabric_conn(monkeypatch, emu.url, auth_type="token", password="bad-password")
    with pytest.raises(RegistryAuthError):
        FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1")


def test_token_revoked_mid_run_is_refreshed_once(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = make_emulator(seed=build_seed(fabric_generated=300))
    fabric_conn(monkeypatch, emu.url, auth_type="token")
    hook = FabricModelRegistryHook()
    assert len(hook.list_model_versions("fm-big", workspace_id="ws-1", page_size=100)) == 300
    assert hook.iam_auth is not None and hook.iam_auth.fetch_count == 1
    emu.store.tokens.clear()  # IAM revoked the token early: the registry answers 401
    assert len(hook.list_model_versions("fm-big", workspace_id="ws-1", page_size=100)) == 300
    assert hook.iam_auth.fetch_count == 2  # page 0 (sent alone) is refused and resent; pages 1-2 use the new token
    assert emu.request_log.count("iam.CreateToken") == 2


def test_known_region_default_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_FAB_X",
        json.dumps(
            {"conn_type": "huaweicloud_fabric", "login": "a", "password": "s", "extra": {"region": "cn-southwest-2"}}
        ),
    )
    assert FabricModelRegistryHook("fab_x").transport.base_url == "https://fabric.cn-southwest-2.myhuaweicloud.com"
