"""Registering and promoting DataArts Fabric versions (issue 23): the request specs (checked before anything is sent,
byte-equal to the official SDK's), the emulator's CreateModelDefinition / UpdateModelDefinition / DeleteModelVersion
driven by the SDK (asynchronous versions, failed versions, the current version), and the two operators: a retry
registers nothing twice, a version that never lists or fails is a typed error, the current version is read back."""

from __future__ import annotations

import http.server
import json
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from helpers import (
    FABRIC_AK,
    FABRIC_PROJECT,
    FABRIC_SK,
    RecordingHandler,
    background_server,
    build_seed,
    fabric_conn,
    huawei_sdk,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_modelreg.errors import (
    RegistryInputError,
    RegistryNotFoundError,
    RegistryServerError,
    RegistryTransportError,
    RegistryVersionFailedError,
    RegistryWaitTimeoutError,
)
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.fabric_lifecycle import create_model_spec, update_model_spec
from airflow_provider_modelreg.operators.fabric_lifecycle import (
    FabricRegisterModelVersionOperator,
    FabricSetCurrentVersionOperator,
)
from airflow_provider_modelreg.triggers.fabric import FabricModelVersionListedTrigger

PATH = "obs://fabric-models/assistant/7/"
V1 = "00000000-0000-4000-8000-000000000001"
VERSION = {"version_name": "v7", "model_path": PATH, "base_model_type": "QWEN_2_72B"}


def context() -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.configure_mock(dag_id="train", run_id="manual__1", task_id="register", map_index=-1, try_number=1)
    return {"ti": ti, "task_instance": ti, "outlet_events": mock.MagicMock()}


@pytest.fixture(params=["aksk", "token"])
def emu(request: pytest.FixtureRequest, make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=build_seed(), version_delay=0.2)
    fabric_conn(monkeypatch, emulator.url, auth_type=request.param)
    return emulator


def sent(emu: Any, operation: str) -> int:
    return int(emu.request_log.count(f"fabric.{operation}"))


def register(**kwargs: Any) -> FabricRegisterModelVersionOperator:
    arguments = {"task_id": "register", "model_id": "fm-1", "poke_interval": 0.05, "timeout": 5, **VERSION, **kwargs}
    return FabricRegisterModelVersionOperator(**arguments)


# ----------------------------------------------------------------------------------------------- the specs


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"version_name": "a/b"}, "version_name"),
        ({"version_name": "x" * 65}, "version_name"),
        ({"version_name": "   "}, "version_name"),
        ({"model_path": "s3://fabric-models/a/"}, "model_path"),
        ({"model_path": "obs://fabric-models/"}, "model_path"),
        ({"model_path": "obs://B_/a"}, "model_path"),
        ({"model_path": "None"}, "model_path"),
        ({"base_model_type": "qwen 72b"}, "base_model_type"),
        ({"base_model_type": None}, "base_model_type"),
        ({"version_name": None}, "version_name"),
        ({"version_description": "a\nb"}, "version_description"),
        ({"current_version_id": "v1"}, "current_version_id"),
        ({"name": "a/b"}, "name"),
        ({"description": "null"}, "description"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        update_model_spec("ws-1", "fm-1", **{**VERSION, **fields})
    assert err.value.field == field


def test_the_create_and_update_specs_refuse_what_the_api_would() -> None:
    with pytest.raises(RegistryInputError) as err:
        update_model_spec("ws-1", "fm-1")
    assert err.value.field == "version_name"  # nothing to update
    with pytest.raises(RegistryInputError) as err:
        update_model_spec("ws-1", "a/b", current_version_id=V1)
    assert err.value.field == "model_id"
    with pytest.raises(RegistryInputError) as err:
        create_model_spec("ws-1", "assistant", model_type="CV_MODEL", **VERSION)
    assert err.value.field == "model_type"
    with pytest.raises(RegistryInputError) as err:
        create_model_spec("ws-1", "assistant")  # a model is defined with its first version
    assert err.value.field == "version_name"
    with pytest.raises(TypeError, match="'version'"):
        update_model_spec("ws-1", "fm-1", version={})  # type: ignore[call-arg]
    assert update_model_spec("ws-1", "fm-1", current_version_id=V1).idempotent is True
    assert update_model_spec("ws-1", "fm-1", **VERSION).idempotent is False  # a repeat is a second version


# ------------------------------------------------------------------------------ byte-equal to the SDK


class Recorder(RecordingHandler):
    seen: list[tuple[str, str, bytes, str]] = []

    def answer(self) -> tuple[int, bytes]:
        if self.command == "DELETE":
            return 204, b""
        return 200, json.dumps({"id": "fm-1", "version_id": V1, "total": 1, "models": [{"id": "fm-1"}]}).encode()


@pytest.fixture(scope="module")
def recorder() -> Iterator[http.server.ThreadingHTTPServer]:
    with background_server(Recorder) as srv:
        yield srv


@pytest.fixture(scope="module")
def hw() -> Any:
    return huawei_sdk()


def sdk_client(hw: Any, url: str, sk: str = FABRIC_SK) -> Any:
    creds = hw.credentials.BasicCredentials(FABRIC_AK, sk, FABRIC_PROJECT)
    return hw.fabric.DataArtsFabricClient.new_builder().with_credentials(creds).with_endpoint(url).build()


def sdk_version(hw: Any, name: str, path: str, description: str | None = None) -> Any:
    llm = hw.fabric.LlmModelConfig(base_model_type="QWEN_2_72B", model_path=path)
    return hw.fabric.ModelVersionInput(name=name, description=description, config=hw.fabric.ModelConfig(llm))


def one(call: Any) -> tuple[str, str, bytes, str]:
    Recorder.seen.clear()
    call()
    assert len(Recorder.seen) == 1
    return Recorder.seen[0]


names = st.text(alphabet="abcXYZ019_-. 模型助手", min_size=1, max_size=64).filter(lambda text: text.strip())
texts = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF), min_size=1, max_size=20).filter(
    lambda text: text.strip() and text not in ("None", "none", "null", "NULL")
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, version=names, description=st.none() | texts, version_description=st.none() | texts)
def test_create_and_update_are_the_sdks_requests_byte_for_byte(
    recorder: http.server.ThreadingHTTPServer,
    hw: Any,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    version: str,
    description: str | None,
    version_description: str | None,
) -> None:
    url = f"http://127.0.0.1:{recorder.server_port}"
    fabric_conn(monkeypatch, url)
    sdk, hook, f = sdk_client(hw, url), FabricModelRegistryHook(), hw.fabric
    new = sdk_version(hw, version, PATH, version_description)
    fields = {"version_name": version, "model_path": PATH, "base_model_type": "QWEN_2_72B"}
    create = f.CreateModelInput(name=name, description=description, type="LLM_MODEL", version=new)
    assert one(
        lambda: hook.create_model(name, description=description, version_description=version_description, **fields)
    ) == one(lambda: sdk.create_model_definition(f.CreateModelDefinitionRequest(workspace_id="ws-1", body=create)))
    update = f.UpdateModelInput(name=name, description=description, version=new)
    assert one(
        lambda: hook.update_model(
            "fm-1", name=name, description=description, version_description=version_description, **fields
        )
    ) == one(lambda: sdk.update_model_definition(f.UpdateModelDefinitionRequest("ws-1", "fm-1", body=update)))
    hook.close()


def test_set_current_delete_and_the_model_read_are_the_sdks(
    recorder: http.server.ThreadingHTTPServer, hw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{recorder.server_port}"
    fabric_conn(monkeypatch, url)
    sdk, hook, f = sdk_client(hw, url), FabricModelRegistryHook(), hw.fabric
    current = f.UpdateModelDefinitionRequest("ws-1", "fm-1", body=f.UpdateModelInput(current_version_id=V1))
    assert one(lambda: hook.update_model("fm-1", current_version_id=V1)) == one(
        lambda: sdk.update_model_definition(current)
    )
    assert one(lambda: hook.delete_model_version("fm-1", V1)) == one(
        lambda: sdk.delete_model_version(f.DeleteModelVersionRequest("ws-1", "fm-1", V1))
    )
    assert one(lambda: hook.get_model("fm-1")) == one(
        lambda: sdk.list_models(f.ListModelsRequest(workspace_id="ws-1", id="fm-1"))
    )
    hook.close()


# ------------------------------------------------------------------------ the emulator, the SDK as client


def test_the_emulator_defines_models_and_versions_as_the_api_does(make_emulator: Any, hw: Any) -> None:
    emu = make_emulator(seed=build_seed(), version_delay=0.3)
    sdk, f = sdk_client(hw, emu.url), hw.fabric

    def versions(model_id: str) -> list[Any]:
        return sdk.list_model_versions(f.ListModelVersionsRequest("ws-1", model_id, limit=100)).versions or []

    def model(model_id: str) -> Any:
        return sdk.list_models(f.ListModelsRequest(workspace_id="ws-1", id=model_id)).models[0]

    def refused(call: Any, status: int) -> None:
        with pytest.raises(hw.exceptions.ClientRequestException) as err:
            call()
        assert err.value.status_code == status and err.value.request_id

    body = f.CreateModelInput(name="新 assistant", type="LLM_MODEL", version=sdk_version(hw, "first", PATH))
    made = sdk.create_model_definition(f.CreateModelDefinitionRequest("ws-1", body))
    assert made.id and made.version_id and versions(made.id) == []  # asynchronous: not listed yet
    time.sleep(0.35)
    assert [v.id for v in versions(made.id)] == [made.version_id]
    assert model(made.id).current_version.id == made.version_id  # the first version is current
    refused(lambda: sdk.create_model_definition(f.CreateModelDefinitionRequest("ws-1", body)), 400)  # name taken
    for bad in (
        f.CreateModelInput(name="x/y", type="LLM_MODEL", version=sdk_version(hw, "a", PATH)),
        f.CreateModelInput(name="other", type="CV", version=sdk_version(hw, "a", PATH)),
        f.CreateModelInput(name="other", type="LLM_MODEL", version=sdk_version(hw, "a", "s3://b/k")),
        f.CreateModelInput(name="other", type="LLM_MODEL", version=f.ModelVersionInput(name="a")),
    ):
        refused(lambda bad=bad: sdk.create_model_definition(f.CreateModelDefinitionRequest("ws-1", bad)), 400)

    update = f.UpdateModelInput(version=sdk_version(hw, "second", "obs://fabric-models/2/"))
    answered = sdk.update_model_definition(f.UpdateModelDefinitionRequest("ws-1", made.id, update))
    assert answered.id == made.id and answered.current_version.id == made.version_id
    emu.store.fail_next_fabric_versions(1)
    sdk.update_model_definition(f.UpdateModelDefinitionRequest("ws-1", made.id, update))
    time.sleep(0.35)
    listed = versions(made.id)
    assert [v.name for v in listed] == ["first", "second", "second"]
    second, failed = listed[1].id, listed[2].id
    assert emu.store.fabric_versions("ws-1", made.id)[2]["status"] == "FAILED"

    def set_current(version_id: str) -> Any:
        current = f.UpdateModelInput(current_version_id=version_id)
        return sdk.update_model_definition(f.UpdateModelDefinitionRequest("ws-1", made.id, current))

    refused(lambda: set_current(failed), 400)  # a failed version cannot be current
    refused(lambda: set_current("00000000-0000-4000-8000-00000000dead"), 404)
    assert set_current(second).current_version.id == second
    assert model(made.id).current_version.id == second
    delete = f.DeleteModelVersionRequest
    refused(lambda: sdk.delete_model_version(delete("ws-1", made.id, second)), 400)  # the current version
    sdk.delete_model_version(delete("ws-1", made.id, made.version_id))
    refused(lambda: sdk.delete_model_version(delete("ws-1", made.id, made.version_id)), 404)
    assert [v.id for v in versions(made.id)] == [second, failed]
    refused(
        lambda: sdk_client(hw, emu.url, sk="wrong").update_model_definition(
            f.UpdateModelDefinitionRequest("ws-1", made.id, update)
        ),
        401,
    )
    assert emu.request_log.count("fabric.UpdateModelDefinition", authenticated=False) == 1
    assert len(versions(made.id)) == 2  # the refused request changed nothing


# --------------------------------------------------------------------------------------- the operators


def test_a_retry_finds_the_version_it_registered(emu: Any) -> None:
    ref = register().execute(context())
    assert (ref["registry"], ref["model_id"], ref["version_name"], ref["uri"]) == ("fabric", "fm-1", "v7", PATH)
    assert ref["base_model_type"] == "QWEN_2_72B" and ref["version_id"] and ref["workspace_id"] == "ws-1"
    assert sent(emu, "UpdateModelDefinition") == 1
    assert register().execute(context()) == ref  # another try: the listed version is this one
    assert sent(emu, "UpdateModelDefinition") == 1
    other = register(model_path="obs://fabric-models/assistant/8/").execute(context())  # other weights
    assert other["version_id"] != ref["version_id"] and sent(emu, "UpdateModelDefinition") == 2


def test_a_lost_answer_is_not_a_second_version(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = FabricModelRegistryHook.update_model

    def arrives_then_fails(self: FabricModelRegistryHook, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise RegistryTransportError("connection reset after the request was sent")

    monkeypatch.setattr(FabricModelRegistryHook, "update_model", arrives_then_fails)
    ref = register().execute(context())
    assert ref["version_name"] == "v7" and sent(emu, "UpdateModelDefinition") == 1

    def refused(self: FabricModelRegistryHook, *args: Any, **kwargs: Any) -> Any:
        raise RegistryServerError(status_code=500, code="c", message="m", request_id=None)

    monkeypatch.setattr(FabricModelRegistryHook, "update_model", refused)  # nothing arrived: the error stands
    with pytest.raises(RegistryServerError):
        register(version_name="v8", timeout=0.3).execute(context())


def test_a_version_that_never_lists_is_a_typed_error_after_the_timeout(make_emulator: Any, monkeypatch: Any) -> None:
    emu = make_emulator(seed=build_seed(), version_delay=60)
    fabric_conn(monkeypatch, emu.url)
    started = time.monotonic()
    with pytest.raises(RegistryWaitTimeoutError, match="v7") as err:
        register(timeout=0.6, poke_interval=0.1).execute(context())
    assert err.value.retryable and 0.6 <= time.monotonic() - started < 5
    assert sent(emu, "UpdateModelDefinition") == 1 and sent(emu, "ListModelVersions") >= 3


def test_a_failed_version_is_a_typed_error_and_not_registered_again(emu: Any) -> None:
    emu.store.fail_next_fabric_versions(1)
    with pytest.raises(RegistryVersionFailedError) as err:
        register().execute(context())
    assert err.value.status == "FAILED" and not err.value.retryable
    with pytest.raises(RegistryVersionFailedError):
        register().execute(context())  # a retry finds the failed one
    assert sent(emu, "UpdateModelDefinition") == 1


def test_a_model_is_created_once_with_its_first_version(emu: Any) -> None:
    op = register(model_id=None, model_name="助手 two", create_model=True, model_description="d")
    ref = op.execute(context())
    assert ref["version_name"] == "v7" and ref["model_id"] not in ("fm-1", None)
    again = register(model_id=None, model_name="助手 two", create_model=True)
    assert again.execute(context()) == ref
    assert sent(emu, "CreateModelDefinition") == 1 and sent(emu, "UpdateModelDefinition") == 0
    hook = FabricModelRegistryHook()
    assert hook.get_model(ref["model_id"]).current_version.id == ref["version_id"]  # type: ignore[union-attr]
    hook.close()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"version_name": "a/b"}, "version_name"),
        ({"model_path": "s3://fabric-models/a/"}, "model_path"),
        ({"base_model_type": "None"}, "base_model_type"),
        ({"model_id": "a/b"}, "model_id"),
        ({"model_id": None}, "model_id"),
        ({"model_id": None, "create_model": True}, "model_name"),
        ({"model_id": None, "create_model": True, "model_name": "x/y"}, "name"),
        ({"version_description": "a\x00"}, "version_description"),
    ],
)
def test_bad_input_fails_before_any_request(emu: Any, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        register(**kwargs).execute(context())
    assert err.value.field == field
    assert emu.request_log.count() == 0


def test_the_current_version_moves_and_is_read_back(emu: Any) -> None:
    ctx = context()
    ref = FabricSetCurrentVersionOperator(task_id="promote", model_id="fm-1", version_name="v1").execute(ctx)
    assert ref["version_id"] == V1 and ref["version_name"] == "v1"
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list}
    assert pushed["previous_version_id"] == "00000000-0000-4000-8000-000000000003"  # the newest was current
    hook = FabricModelRegistryHook()
    assert hook.get_model("fm-1").current_version.id == V1  # type: ignore[union-attr]
    hook.close()
    assert sent(emu, "UpdateModelDefinition") == 1
    FabricSetCurrentVersionOperator(task_id="promote", model_id="fm-1", version_id=V1).execute(context())
    assert sent(emu, "UpdateModelDefinition") == 1  # current already: nothing sent


def test_a_version_that_is_not_listed_or_failed_is_refused(emu: Any) -> None:
    with pytest.raises(RegistryNotFoundError):
        FabricSetCurrentVersionOperator(task_id="p", model_id="fm-1", version_name="v9").execute(context())
    emu.store.fail_next_fabric_versions(1)
    with pytest.raises(RegistryVersionFailedError):
        register().execute(context())
    with pytest.raises(RegistryVersionFailedError):
        FabricSetCurrentVersionOperator(task_id="p", model_id="fm-1", version_name="v7").execute(context())
    assert sent(emu, "UpdateModelDefinition") == 1  # the registration only


def test_a_move_the_read_back_does_not_show_fails_the_task(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    monkeypatch.setattr(FabricModelRegistryHook, "update_model", lambda *a, **k: None)  # a move that did not happen
    with pytest.raises(AirflowFailException, match="current version is 00000000-0000-4000-8000-000000000003"):
        FabricSetCurrentVersionOperator(task_id="p", model_id="fm-1", version_id=V1).execute(context())


# --------------------------------------------------------------------------------------- deferrable


def first_event(trigger: FabricModelVersionListedTrigger) -> dict[str, Any]:
    import asyncio

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(first())


def deferred_event(op: FabricRegisterModelVersionOperator) -> dict[str, Any]:
    """Run ``op`` until it defers, rebuild its trigger from what Airflow stores, run it to its event."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airflow_provider_modelreg.triggers.fabric.FabricModelVersionListedTrigger"
    return first_event(FabricModelVersionListedTrigger(**kwargs))


def test_a_deferred_registration_resumes_with_the_listed_version(emu: Any) -> None:
    event = deferred_event(register(deferrable=True))
    assert event["status"] == "success" and event["model_id"] == "fm-1"
    ref = register(deferrable=True).execute_complete(context(), event)
    assert ref["version_name"] == "v7" and ref["uri"] == PATH and ref["workspace_id"] == "ws-1"
    assert register(deferrable=True).execute(context()) == ref  # a retry finds it: no deferral, no request
    assert sent(emu, "UpdateModelDefinition") == 1


def test_a_deferred_registration_that_fails_or_never_lists_is_a_typed_error(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_emulator(seed=build_seed(), version_delay=0.1)
    fabric_conn(monkeypatch, emu.url)
    emu.store.fail_next_fabric_versions(1)
    event = deferred_event(register(deferrable=True))
    assert event["status"] == "failed" and event["version_status"] == "FAILED"
    with pytest.raises(RegistryVersionFailedError):
        register(deferrable=True).execute_complete(context(), event)
    emu.store.version_delay = 60
    started = time.monotonic()
    event = deferred_event(register(deferrable=True, version_name="v8", timeout=0.5, poke_interval=0.1))
    assert event["status"] == "timeout" and time.monotonic() - started < 5
    with pytest.raises(RegistryWaitTimeoutError, match="v8"):
        register(deferrable=True, timeout=0.5).execute_complete(context(), event)


def test_the_trigger_reports_a_refusal_at_once(emu: Any) -> None:
    trigger = FabricModelVersionListedTrigger(
        fabric_conn_id="fabric_default",
        workspace_id="ws-1",
        model_id="fm-missing",
        version_name="v7",
        model_path=PATH,
        poke_interval=0.1,
        end_time=time.time() + 30,
    )
    started = time.monotonic()
    event = first_event(trigger)
    assert (event["status"], event["error_type"]) == ("error", "RegistryNotFoundError")
    assert time.monotonic() - started < 5 and sent(emu, "ListModelVersions") == 1
