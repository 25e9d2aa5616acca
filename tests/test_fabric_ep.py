"""DataArts Fabric EP service instances (issue 23): the request specs (checked before anything is sent, byte-equal to
``huaweicloudsdkdataartsfabricep`` 3.1.219's requests: method, path, query, signed header names, body), the host
rule, the url masking, and the emulator driven by the SDK for every operation the provider uses."""

from __future__ import annotations

import http.server
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import (
    FABRIC_AK,
    FABRIC_PROJECT,
    FABRIC_SK,
    background_server,
    build_seed,
    fabric_conn,
    reply,
    scratch_home,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_modelreg.deploy import fabric_service_spec
from airflow_provider_modelreg.errors import RegistryConnectionConfigError, RegistryInputError
from airflow_provider_modelreg.fabric_ep_models import masked_url, url_secrets
from airflow_provider_modelreg.hooks.fabric_ep import FabricEpHook
from airflow_provider_modelreg.hooks.fabric_ep_specs import deploy_instance_body, update_instance_spec

V1 = "00000000-0000-4000-8000-000000000001"
V2 = "00000000-0000-4000-8000-000000000002"


@pytest.fixture(scope="module")
def ep() -> Any:
    with scratch_home():
        import huaweicloudsdkcore.auth.credentials as credentials
        import huaweicloudsdkcore.exceptions.exceptions as exceptions
        import huaweicloudsdkdataartsfabricep.v1 as sdk
        import huaweicloudsdkdataartsfabricep.v1.region.dataartsfabricep_region as region
    return type("EP", (), {"credentials": credentials, "exceptions": exceptions, "sdk": sdk, "region": region})


def client(ep: Any, url: str) -> Any:
    creds = ep.credentials.BasicCredentials(FABRIC_AK, FABRIC_SK, FABRIC_PROJECT)
    return ep.sdk.DataArtsFabricEpClient.new_builder().with_credentials(creds).with_endpoint(url).build()


# ----------------------------------------------------------------------------------------------- the specs


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "svc", "model_id": "fm-1", "version_id": V1, "endpoint_id": "ep-1"}
    return deploy_instance_body(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "a/b"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"version_id": "v1"}, "version_id"),
        ({"model_id": "a/b"}, "model_id"),
        ({"endpoint_id": ""}, "endpoint_id"),
        ({"max_instances": 0}, "max_instances"),
        ({"max_instances": 1001}, "max_instances"),
        ({"max_instances": True}, "max_instances"),
        ({"min_instances": 2, "max_instances": 1}, "min_instances"),
        ({"spec_code": "a b"}, "spec_code"),
        ({"description": "a\nb"}, "description"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        body(**fields)
    assert err.value.field == field


def test_an_update_needs_something_to_change_and_both_halves_of_a_source() -> None:
    with pytest.raises(RegistryInputError):
        update_instance_spec("ws-1", "i-1")
    with pytest.raises(RegistryInputError, match="both"):
        update_instance_spec("ws-1", "i-1", version_id=V1)
    assert update_instance_spec("ws-1", "i-1", model_id="fm-1", version_id=V1).idempotent is True


def test_the_deprecated_spec_builder_gives_the_checked_body() -> None:
    ref = {"model_id": "fm-1", "version_name": "v7", "version_id": V1, "uri": "obs://b/k/"}
    spec = fabric_service_spec(ref, endpoint_id="ep-1", spec_code="gpu.a10", max_instances=3)
    assert spec == body(name=spec["name"], spec_code="gpu.a10", max_instances=3)
    assert list(spec) == list(body(name=spec["name"]))


def test_urls_lose_their_credentials() -> None:
    url = "https://u:pw@host.example:8443/v1/chat?token=abc123&model=q&X-Api-Key=k9"
    shown = masked_url(url)
    assert shown is not None and "abc123" not in shown and "pw" not in shown and "k9" not in shown
    assert "model=q" in shown and "host.example:8443" in shown
    assert sorted(url_secrets(url)) == ["abc123", "k9", "pw"]
    assert masked_url("https://host/v1") == "https://host/v1" and url_secrets(None) == []
    fragment = "https://host/v1#access_token=frag-tok&state=s1"
    assert masked_url(fragment) == "https://host/v1#access_token=***&state=s1" and url_secrets(fragment) == ["frag-tok"]
    assert masked_url("https://host/v1#section-2") == "https://host/v1#section-2"


def test_the_ep_host_follows_the_sdks_regions(monkeypatch: pytest.MonkeyPatch, ep: Any) -> None:
    for region in ("cn-north-4", "cn-southwest-2"):
        assert ep.region.DataArtsFabricEpRegion.value_of(region).endpoints == [
            f"https://fabric-ep.{region}.myhuaweicloud.com"
        ]
        fabric_conn(monkeypatch, "https://x", endpoint=None, region=region)
        monkeypatch.setenv(
            "AIRFLOW_CONN_FABRIC_DEFAULT",
            json.dumps({"conn_type": "huaweicloud_fabric", "login": "a", "password": "b", "extra": {"region": region}}),
        )
        assert FabricEpHook()._settings(FabricEpHook().connection)[0] == f"https://fabric-ep.{region}.myhuaweicloud.com"
    regional = {"endpoint": "https://fabric.cn-north-4.myhuaweicloud.com"}
    monkeypatch.setenv("AIRFLOW_CONN_FABRIC_DEFAULT", json.dumps({"conn_type": "x", "extra": regional}))
    hook = FabricEpHook()
    assert hook._settings(hook.connection)[:2] == ("https://fabric-ep.cn-north-4.myhuaweicloud.com", "cn-north-4")
    override = {"region": "cn-north-4", "ep_endpoint": "http://127.0.0.1:9"}
    monkeypatch.setenv("AIRFLOW_CONN_FABRIC_DEFAULT", json.dumps({"conn_type": "x", "extra": override}))
    hook = FabricEpHook()
    assert hook._settings(hook.connection)[0] == "http://127.0.0.1:9"
    monkeypatch.setenv("AIRFLOW_CONN_FABRIC_DEFAULT", json.dumps({"conn_type": "x", "extra": {"region": "eu-west-0"}}))
    hook = FabricEpHook()
    with pytest.raises(RegistryConnectionConfigError):
        hook._settings(hook.connection)


# ------------------------------------------------------------------------------ byte-equal to the SDK


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, bytes, str, str, str, str]] = []

    def _record(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        found = re.search(r"SignedHeaders=([^,]+)", self.headers.get("Authorization", ""))
        type(self).seen.append(
            (
                self.command,
                self.path,
                raw,
                self.headers.get("Content-Type", ""),
                found.group(1) if found else "",
                self.headers.get("X-Project-Id", ""),
                self.headers.get("Accept", ""),
            )
        )
        if self.command == "DELETE":
            reply(self, 204, b"")
            return
        instance = {"id": "i-1", "status": "RUNNING", "source": {"id": "fm-1", "version_id": V1}}
        reply(self, 200, json.dumps({**instance, "total": 1, "service_instances": [instance]}).encode())

    do_GET = do_POST = do_PUT = do_DELETE = _record

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def recorder() -> Iterator[http.server.ThreadingHTTPServer]:
    with background_server(Recorder) as srv:
        yield srv


def one(call: Any) -> tuple[str, str, bytes, str, str, str, str]:
    Recorder.seen.clear()
    call()
    assert len(Recorder.seen) == 1
    return Recorder.seen[0]


names = st.text(alphabet="abcXYZ019_-. 模型助手", min_size=1, max_size=64).filter(lambda text: text.strip())
texts = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF), min_size=1, max_size=20).filter(
    lambda text: text.strip() and text not in ("None", "none", "null", "NULL")
)
ids = st.text(alphabet="abcdef0123456789-", min_size=32, max_size=36)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=names,
    description=st.none() | texts,
    version=ids,
    low=st.integers(0, 5),
    extra=st.integers(0, 995),
    spec=st.none() | st.sampled_from(["gpu.a10.1", "modelarts.vm.cpu.2u", "ascend_910b:1"]),
)
def test_deploy_and_update_are_the_sdks_requests_byte_for_byte(
    recorder: http.server.ThreadingHTTPServer,
    ep: Any,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    description: str | None,
    version: str,
    low: int,
    extra: int,
    spec: str | None,
) -> None:
    url = f"http://127.0.0.1:{recorder.server_port}"
    fabric_conn(monkeypatch, url, ep_endpoint=url)
    sdk, hook, m = client(ep, url), FabricEpHook(), ep.sdk
    high = max(low, 1) + extra
    ours = deploy_instance_body(
        name=name,
        model_id="fm-1",
        version_id=version,
        endpoint_id="ep-1",
        spec_code=spec,
        min_instances=low,
        max_instances=high,
        description=description,
    )
    theirs = m.ServiceInstanceInput(
        source=m.SourceRef(id="fm-1", version_id=version),
        name=name,
        description=description,
        endpoint_id="ep-1",
        config=m.ServiceInstanceConfig(
            model_instance_config=m.ModelServiceInstanceConfig(
                resource=m.ResourceDemand(min=low, max=high, spec_code=spec)
            )
        ),
    )
    assert one(lambda: hook.deploy_instance(ours)) == one(
        lambda: sdk.deploy_service_instance(m.DeployServiceInstanceRequest(workspace_id="ws-1", body=theirs))
    )
    update = m.UpdateServiceInstanceInput(source=m.SourceRef(id="fm-1", version_id=version), description=description)
    assert one(
        lambda: hook.update_instance("i-1", model_id="fm-1", version_id=version, description=description)
    ) == one(
        lambda: sdk.update_service_instance(
            m.UpdateServiceInstanceRequest(workspace_id="ws-1", instance_id="i-1", body=update)
        )
    )
    scale = m.UpdateServiceInstanceInput(
        config=m.UpdateServiceInstanceConfig(
            model_instance_config=m.UpdateModelServiceInstanceConfig(resource=m.BaseDemand(max=high))
        )
    )
    assert one(lambda: hook.update_instance("i-1", max_instances=high)) == one(
        lambda: sdk.update_service_instance(
            m.UpdateServiceInstanceRequest(workspace_id="ws-1", instance_id="i-1", body=scale)
        )
    )
    hook.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(version=st.none() | ids, endpoint=st.none() | st.sampled_from(["ep-1", "EP-2a"]), name=st.none() | names)
def test_show_delete_and_list_are_the_sdks(
    recorder: http.server.ThreadingHTTPServer,
    ep: Any,
    monkeypatch: pytest.MonkeyPatch,
    version: str | None,
    endpoint: str | None,
    name: str | None,
) -> None:
    url = f"http://127.0.0.1:{recorder.server_port}"
    fabric_conn(monkeypatch, url, ep_endpoint=url)
    sdk, hook, m = client(ep, url), FabricEpHook(), ep.sdk
    assert one(lambda: hook.get_instance("i-1")) == one(
        lambda: sdk.show_service_instance_detail(m.ShowServiceInstanceDetailRequest("ws-1", "i-1"))
    )
    assert one(lambda: hook.delete_instance("i-1")) == one(
        lambda: sdk.delete_service_instance(m.DeleteServiceInstanceRequest("ws-1", "i-1"))
    )
    filters = {"version_id": version, "endpoint_id": endpoint, "name": name}
    request = m.ListServicesInstancesRequest(workspace_id="ws-1", limit=100, offset=0, source_id="fm-1", **filters)
    assert one(lambda: hook.list_instances(source_id="fm-1", **filters)) == one(
        lambda: sdk.list_services_instances(request)
    )
    hook.close()


# ------------------------------------------------------------------------ the emulator, the SDK as client


def test_the_emulator_serves_every_operation_to_the_sdk(make_emulator: Any, ep: Any) -> None:
    from modelreg_emulator.fabric_ep import FabricEpSettings

    emu = make_emulator(
        seed=build_seed(), fabric_ep=FabricEpSettings(deploy_seconds=0.3, update_seconds=0.3, delete_seconds=0.2)
    )
    sdk, m = client(ep, emu.url), ep.sdk

    def show(instance_id: str) -> Any:
        return sdk.show_service_instance_detail(m.ShowServiceInstanceDetailRequest("ws-1", instance_id))

    def until(instance_id: str, status: str) -> Any:
        for _ in range(100):
            found = show(instance_id)
            if found.status == status:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{instance_id} never {status}")

    config = m.ServiceInstanceConfig(
        model_instance_config=m.ModelServiceInstanceConfig(resource=m.ResourceDemand(min=1, max=2, spec_code="s1"))
    )
    new = m.ServiceInstanceInput(
        source=m.SourceRef(id="fm-1", version_id=V1), name="svc 1", endpoint_id="ep-1", config=config
    )
    created = sdk.deploy_service_instance(m.DeployServiceInstanceRequest(workspace_id="ws-1", body=new))
    first = show(created.id)
    assert first.status in ("PENDING", "CREATING") and first.source.version_id == V1
    running = until(created.id, "RUNNING")
    assert running.url.address.startswith("https://") and "token=" in running.url.address
    listed = sdk.list_services_instances(
        m.ListServicesInstancesRequest(workspace_id="ws-1", source_id="fm-1", version_id=V1, endpoint_id="ep-1")
    )
    assert listed.total == 1 and [i.id for i in listed.service_instances] == [created.id]
    other = m.ListServicesInstancesRequest(workspace_id="ws-1", source_id="fm-1", version_id=V2)
    assert sdk.list_services_instances(other).total == 0
    swap = m.UpdateServiceInstanceInput(source=m.SourceRef(id="fm-1", version_id=V2))
    answer = sdk.update_service_instance(m.UpdateServiceInstanceRequest("ws-1", created.id, body=swap))
    assert answer.id == created.id
    assert show(created.id).status == "UPDATING"
    with pytest.raises(ep.exceptions.ClientRequestException) as busy:
        sdk.update_service_instance(m.UpdateServiceInstanceRequest("ws-1", created.id, body=swap))
    assert busy.value.status_code == 409
    assert until(created.id, "RUNNING").source.version_id == V2
    emu_admin = emu.registry.store
    from modelreg_emulator.fabric_ep import fabric_ep_admin

    fabric_ep_admin(emu_admin, "fail", "ws-1", created.id, {"error_code": "EP.5001", "error_msg": "OOM"})
    failed = show(created.id)
    assert (failed.status, failed.error_code, failed.error_msg) == ("FAILED", "EP.5001", "OOM")
    sdk.delete_service_instance(m.DeleteServiceInstanceRequest("ws-1", created.id))
    assert show(created.id).status == "DELETING"
    time.sleep(0.3)
    with pytest.raises(ep.exceptions.ClientRequestException) as gone:
        show(created.id)
    assert gone.value.status_code == 404
    with pytest.raises(ep.exceptions.ClientRequestException) as again:
        sdk.delete_service_instance(m.DeleteServiceInstanceRequest("ws-1", created.id))
    assert again.value.status_code == 404
    bad = m.ServiceInstanceInput(source=m.SourceRef(id="fm-1", version_id="short"), name="x", endpoint_id="ep-1")
    with pytest.raises(ep.exceptions.ClientRequestException) as refused:
        sdk.deploy_service_instance(m.DeployServiceInstanceRequest(workspace_id="ws-1", body=bad))
    assert refused.value.status_code == 400
    assert emu.request_log.count("fabric_ep.DeployServiceInstance", authenticated=True) == 2


def test_the_emulator_refuses_a_wrong_signature(make_emulator: Any, ep: Any) -> None:
    emu = make_emulator(seed=build_seed())
    creds = ep.credentials.BasicCredentials(FABRIC_AK, "wrong-secret", FABRIC_PROJECT)
    sdk = ep.sdk.DataArtsFabricEpClient.new_builder().with_credentials(creds).with_endpoint(emu.url).build()
    with pytest.raises(ep.exceptions.ClientRequestException) as err:
        sdk.list_services_instances(ep.sdk.ListServicesInstancesRequest(workspace_id="ws-1"))
    assert err.value.status_code == 401
    assert emu.request_log.count("fabric_ep.ListServicesInstances", authenticated=False) == 1
