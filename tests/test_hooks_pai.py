"""PaiModelRegistryHook over real HTTP against the emulator on 127.0.0.1."""

from __future__ import annotations

import json
import ssl
from typing import Any

import pytest
from helpers import PAI_SECRET, build_seed, pai_conn

from airflow_provider_modelreg.errors import (
    RegistryAuthError,
    RegistryNotFoundError,
    RegistryStateError,
)
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook, pai_host
from airflow_provider_modelreg.models import ApprovalStatus


@pytest.fixture
def emu(make_emulator: Any) -> Any:
    return make_emulator(seed=build_seed(pai_generated=250))


@pytest.fixture
def hook(emu: Any, monkeypatch: pytest.MonkeyPatch) -> PaiModelRegistryHook:
    pai_conn(monkeypatch, emu.url)
    return PaiModelRegistryHook()


def test_get_model_version_is_typed(hook: PaiModelRegistryHook) -> None:
    version = hook.get_model_version("m-main", "1.0.0")
    assert version.version_name == "1.0.0"
    assert version.status is ApprovalStatus.APPROVED
    assert version.uri == "oss://bucket.oss-cn-hangzhou.aliyuncs.com/models/1.0.0/"
    assert version.labels is not None and version.labels[0].key == "team"
    assert version.gmt_create_time is not None and version.gmt_create_time.tzinfo is not None
    ref = version.to_ref(model_id="m-main", region=hook.region, workspace_id=hook.workspace_id).to_xcom()
    assert ref["uri"] == version.uri and ref["version_id"] == "1.0.0" and ref["region"] == "cn-hangzhou"
    json.dumps(ref)


def test_list_every_version_once_newest_first(hook: PaiModelRegistryHook) -> None:
    versions = hook.list_model_versions("m-big", page_size=30)
    names = [v.version_name for v in versions]
    assert len(names) == 250 == len(set(names))
    created = [v.gmt_create_time for v in versions]
    assert created == sorted(created, reverse=True)  # type: ignore[type-var]
    asc = hook.list_model_versions("m-big", order="ASC", max_results=45, page_size=20)
    assert [v.version_name for v in asc] == names[::-1][:45]


def test_list_filters(hook: PaiModelRegistryHook) -> None:
    approved = hook.list_model_versions("m-main", approval_status="approved")
    assert [v.version_name for v in approved] == ["1.0.0"]
    assert [v.version_name for v in hook.list_model_versions("m-main", version_name="1.1.0")] == ["1.1.0"]
    assert len(hook.list_model_versions("m-main", label_filter="risk")) == 3


async def test_async_twins(hook: PaiModelRegistryHook) -> None:
    version = await hook.aget_model_version("m-main", "1.1.0")
    assert version.status is ApprovalStatus.PENDING
    versions = await hook.alist_model_versions("m-big", page_size=50)
    assert len({v.version_name for v in versions}) == 250
    await hook.aclose()


def test_get_model_and_list_models(hook: PaiModelRegistryHook) -> None:
    model = hook.get_model("m-main")
    assert model.model_id == "m-main"
    assert model.latest_version is not None
    assert {m.model_id for m in hook.list_models()} >= {"m-main", "m-big"}


def test_update_approval_and_terminal_refusal(hook: PaiModelRegistryHook) -> None:
    assert hook.update_model_version("m-main", "1.1.0", approval_status="Approved")
    assert hook.get_model_version("m-main", "1.1.0").status is ApprovalStatus.APPROVED
    hook.update_model_version("m-main", "1.1.0", approval_status=ApprovalStatus.APPROVED)  # same value: harmless
    with pytest.raises(RegistryStateError) as err:
        hook.update_model_version("m-main", "1.1.0", approval_status="Rejected")
    assert err.value.code == "InvalidApprovalStatus.Terminal" and err.value.http_status == 400
    assert err.value.request_id


def test_not_found_is_typed(hook: PaiModelRegistryHook) -> None:
    with pytest.raises(RegistryNotFoundError) as err:
        hook.get_model_version("m-main", "9.9.9")
    assert err.value.code == "InvalidModelVersion.NotFound" and err.value.request_id


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"password": "wrong-secret"}, "SignatureDoesNotMatch"),
        ({"login": "LTAIunknown"}, "InvalidAccessKeyId.NotFound"),
    ],
)
def test_refused_credentials(emu: Any, monkeypatch: pytest.MonkeyPatch, override: dict[str, str], code: str) -> None:
    pai_conn(monkeypatch, emu.url, **override)
    with pytest.raises(RegistryAuthError) as err:
        PaiModelRegistryHook().get_model_version("m-main", "1.0.0")
    assert err.value.code == code
    assert err.value.attempts == 1  # auth failures are not retried


def test_host_rule() -> None:
    assert pai_host("cn-hangzhou") == "aiworkspace.cn-hangzhou.aliyuncs.com"
    assert pai_host("cn-shanghai", "vpc") == "aiworkspace-vpc.cn-shanghai.aliyuncs.com"
    assert pai_host("cn-qingdao", "vpc") == "aiworkspace.aliyuncs.com"
    assert pai_host("ap-southeast-5") == "aiworkspace-vpc.ap-southeast-5.aliyuncs.com"
    assert pai_host("cn-guangzhou") == "aiworkspace.cn-guangzhou.aliyuncs.com"


def test_region_builds_https_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PAI_X",
        json.dumps({"conn_type": "pai", "login": "k", "password": "s", "extra": {"region": "cn-beijing"}}),
    )
    transport = PaiModelRegistryHook("pai_x").transport
    assert transport.base_url == "https://aiworkspace.cn-beijing.aliyuncs.com"
    from airflow_provider_modelreg.transport import shared_ssl_context

    # TLS verification on, with the one process-wide context
    assert transport.http._pool._ssl_context is shared_ssl_context()  # type: ignore[attr-defined]
    assert shared_ssl_context().verify_mode == ssl.CERT_REQUIRED


def test_connection_from_uri(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import quote

    monkeypatch.setenv(
        "AIRFLOW_CONN_PAI_URI", f"pai://LTAItestKey0001:{quote(PAI_SECRET)}@/?endpoint={quote(emu.url, safe='')}"
    )
    assert PaiModelRegistryHook("pai_uri").get_model_version("m-main", "1.0.0").version_name == "1.0.0"


def test_test_connection(hook: PaiModelRegistryHook, emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    pai_conn(monkeypatch, emu.url, conn_id="pai_bad", password="nope")
    ok, message = PaiModelRegistryHook("pai_bad").test_connection()
    assert not ok and "SignatureDoesNotMatch" in message and "nope" not in message


def test_a_numeric_workspace_id_from_a_connection_uri_reads_as_its_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow reads each query value of a connection URI as JSON (Airflow 3.1 among others): ``workspace_id=12345``
    reaches the hook as the number 12345; it is the workspace "12345". A bool or a list is still refused."""
    from airflow_provider_modelreg.errors import RegistryConnectionConfigError
    from airflow_provider_modelreg.hooks.base import extra_str

    assert extra_str({"workspace_id": 12345}, "workspace_id") == "12345"
    assert extra_str({"workspace_id": " 12345 "}, "workspace_id") == "12345"
    for bad in (True, [1], {"a": 1}, 1.5):
        with pytest.raises(RegistryConnectionConfigError, match="workspace_id"):
            extra_str({"workspace_id": bad}, "workspace_id")
    monkeypatch.setenv("AIRFLOW_CONN_PAI_URI_NUMERIC", "pai://LTAIkey:secret@/?region=cn-hangzhou&workspace_id=12345")
    hook = PaiModelRegistryHook(pai_conn_id="pai_uri_numeric")
    assert hook.region == "cn-hangzhou"
    assert hook._settings(hook.connection)[2] == "12345"
