"""The official SDKs (test oracles) against the emulator: they succeed, parse the answers, and are refused with the
vendors' statuses and codes when the credentials, signature, date or nonce are wrong."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from helpers import huawei_sdk

PAI_KEY, PAI_SECRET = "LTAIsdkTestKey0001", "sdk-test-secret-pai"
FAB_AK, FAB_SK, FAB_PROJECT = "SDKTESTFABRICAK0001", "sdk-test-secret-fabric", "sdk-project-0001"
SPECIAL_MODEL, SPECIAL_VERSION = "team/a b*~", "v1 é中"


def _pai_version(name: str, status: str, day: int, **extra: Any) -> dict[str, Any]:
    return {
        "VersionName": name,
        "ApprovalStatus": status,
        "Uri": f"oss://bucket.oss-cn-hangzhou.aliyuncs.com/m/{name}/",
        "FormatType": "SavedModel",
        "FrameworkType": "TensorFlow",
        "SourceType": "Custom",
        "GmtCreateTime": f"2024-01-{day:02d}T08:00:00.000Z",
        "Labels": [{"Key": "team", "Value": "risk"}],
        **extra,
    }


def sdk_seed() -> dict[str, Any]:
    versions = [
        _pai_version("0.9.0", "Rejected", 1),
        _pai_version("1.0.0", "Approved", 2, FormatType="ONNX", Labels=[{"Key": "stage", "Value": "prod a"}]),
        _pai_version("1.1.0", "Pending", 3, SourceType="PAIFlow", SourceId="region=cn,id=run-1"),
        _pai_version("1.2.0", "Pending", 4),
    ]
    fab_versions = [
        {
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "name": name,
            "config": {"llm_model_config": {"base_model_type": "QWEN_2_72B", "model_path": f"obs://b/m/{i}/"}},
            "create_time": f"2024-02-{i:02d}T00:00:00Z",
        }
        for i, name in enumerate(["alpha-one", "beta-two", "alpha-three"], start=1)
    ]
    return {
        "pai": {
            "credentials": [{"access_key_id": PAI_KEY, "access_key_secret": PAI_SECRET}],
            "models": [
                {"ModelId": "m-sdk", "ModelName": "sdk-model", "WorkspaceId": "ws-sdk", "Versions": versions},
                {"ModelId": "m-gen", "ModelName": "generated", "WorkspaceId": "ws-sdk", "generate_versions": 35},
                {
                    "ModelId": SPECIAL_MODEL,
                    "ModelName": "special",
                    "WorkspaceId": "ws-other",
                    "Versions": [_pai_version(SPECIAL_VERSION, "Pending", 5)],
                },
            ],
        },
        "fabric": {
            "credentials": [{"ak": FAB_AK, "sk": FAB_SK, "project_id": FAB_PROJECT}],
            "users": [],
            "workspaces": [
                {
                    "id": "ws-fab",
                    "models": [
                        {"id": "fm-sdk", "name": "assistant", "versions": fab_versions},
                        {"id": "fm-gen", "name": "generated", "generate_versions": 23},
                    ],
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    from modelreg_emulator import RegistryEmulator

    with RegistryEmulator(sdk_seed()) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def hw_sdk() -> Any:
    return huawei_sdk()


def ali_client(emu: Any, key: str = PAI_KEY, secret: str = PAI_SECRET) -> Any:
    from alibabacloud_aiworkspace20210204.client import Client
    from alibabacloud_tea_openapi.models import Config

    endpoint = emu.url.removeprefix("http://")
    return Client(Config(access_key_id=key, access_key_secret=secret, endpoint=endpoint, protocol="http"))


def hw_client(emu: Any, hw: Any, ak: str = FAB_AK, sk: str = FAB_SK) -> Any:
    creds = hw.credentials.BasicCredentials(ak, sk, FAB_PROJECT)
    return hw.fabric.DataArtsFabricClient.new_builder().with_credentials(creds).with_endpoint(emu.url).build()


def gmv() -> Any:
    from alibabacloud_aiworkspace20210204.models import GetModelVersionRequest

    return GetModelVersionRequest()


def GetModelRequest() -> Any:
    from alibabacloud_aiworkspace20210204.models import GetModelRequest as Request

    return Request()


def ali_error(call: Any) -> Any:
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

    with pytest.raises(AlibabaCloudException) as err:
        call()
    return err.value


# ------------------------------------------------------------------------------------------------ PAI, success


def test_pai_get_model_version(emu: Any) -> None:
    body = ali_client(emu).get_model_version("m-sdk", "1.0.0", gmv()).body
    assert body.version_name == "1.0.0" and body.approval_status == "Approved" and body.format_type == "ONNX"
    assert body.uri == "oss://bucket.oss-cn-hangzhou.aliyuncs.com/m/1.0.0/"
    assert body.labels[0].key == "stage" and body.labels[0].value == "prod a"
    assert body.request_id and body.gmt_create_time == "2024-01-02T08:00:00.000Z"


def test_pai_path_parameters_are_percent_decoded_per_segment(emu: Any) -> None:
    body = ali_client(emu).get_model_version(SPECIAL_MODEL, SPECIAL_VERSION, gmv()).body
    assert body.version_name == SPECIAL_VERSION
    assert emu.request_log.entries[-1].target.startswith("/api/v1/models/team%2Fa%20b%2A~/versions/")


def test_pai_list_model_versions_filters(emu: Any) -> None:
    from alibabacloud_aiworkspace20210204 import models

    client = ali_client(emu)

    def names(**kwargs: Any) -> list[str]:
        body = client.list_model_versions("m-sdk", models.ListModelVersionsRequest(**kwargs)).body
        assert body.total_count == len(body.versions)
        return [v.version_name for v in body.versions]

    assert names() == ["0.9.0", "1.0.0", "1.1.0", "1.2.0"]
    assert names(approval_status="Pending") == ["1.1.0", "1.2.0"]
    assert names(version_name="1.0.0") == ["1.0.0"]
    assert names(label="prod a") == ["1.0.0"]  # value substring, with a space (form-encoded '+')
    assert names(label="tea") == ["0.9.0", "1.1.0", "1.2.0"]  # key substring
    assert names(format_type="ONNX") == ["1.0.0"]
    assert names(framework_type="TensorFlow", source_type="PAIFlow") == ["1.1.0"]
    assert names(source_id="region=cn,id=run-1") == ["1.1.0"]
    assert names(approval_status="Approved", label="nothing") == []


def test_pai_list_model_versions_paging_and_order(emu: Any) -> None:
    from alibabacloud_aiworkspace20210204 import models

    client = ali_client(emu)
    seen_asc: list[str] = []
    for page in range(1, 5):
        body = client.list_model_versions(
            "m-gen", models.ListModelVersionsRequest(page_number=page, page_size=10, sort_by="GmtCreateTime")
        ).body
        assert body.total_count == 35
        seen_asc += [v.version_name for v in body.versions]
    assert len(seen_asc) == 35 == len(set(seen_asc))
    created = [client.get_model_version("m-gen", n, gmv()).body.gmt_create_time for n in seen_asc[:3]]
    assert created == sorted(created)
    desc = client.list_model_versions(
        "m-gen", models.ListModelVersionsRequest(page_number=2, page_size=10, order="DESC")
    ).body
    assert [v.version_name for v in desc.versions] == seen_asc[::-1][10:20]
    default = client.list_model_versions("m-gen", models.ListModelVersionsRequest()).body
    assert [v.version_name for v in default.versions] == seen_asc[:10]  # PageNumber 1, PageSize 10, ASC
    beyond = client.list_model_versions("m-gen", models.ListModelVersionsRequest(page_number=9, page_size=10)).body
    assert beyond.versions == [] and beyond.total_count == 35


@pytest.mark.parametrize(
    "kwargs",
    [
        {"page_size": 0},
        {"page_size": 101},
        {"page_number": 0},
        {"order": "UP"},
        {"sort_by": "VersionName"},
        {"approval_status": "Done"},
    ],
)
def test_pai_invalid_parameter(emu: Any, kwargs: dict[str, Any]) -> None:
    from alibabacloud_aiworkspace20210204 import models

    err = ali_error(lambda: ali_client(emu).list_model_versions("m-sdk", models.ListModelVersionsRequest(**kwargs)))
    assert err.status_code == 400 and err.code == "InvalidParameter" and err.request_id


def test_pai_not_found(emu: Any) -> None:
    client = ali_client(emu)
    err = ali_error(lambda: client.get_model_version("m-missing", "1.0.0", gmv()))
    assert (err.status_code, err.code) == (404, "InvalidModel.NotFound")
    err = ali_error(lambda: client.get_model_version("m-sdk", "9.9.9", gmv()))
    assert (err.status_code, err.code) == (404, "InvalidModelVersion.NotFound")
    assert err.data["HostId"] and err.data["Recommend"] and err.data["Message"]


def test_pai_update_model_version_terminal_rule(make_emulator: Any) -> None:
    from alibabacloud_aiworkspace20210204 import models

    emu = make_emulator(seed=sdk_seed())  # its own: the module's emulator is read-only (the other tests read 1.2.0)
    client = ali_client(emu)
    request = models.UpdateModelVersionRequest
    assert client.update_model_version("m-sdk", "1.2.0", request(approval_status="Approved")).body.request_id
    assert emu.store.get_pai_version("m-sdk", "1.2.0")["ApprovalStatus"] == "Approved"
    # a retried PUT with the value it already has is harmless
    assert client.update_model_version("m-sdk", "1.2.0", request(approval_status="Approved")).status_code == 200
    for name, other in (("1.2.0", "Rejected"), ("1.2.0", "Pending"), ("0.9.0", "Approved")):
        err = ali_error(lambda n=name, o=other: client.update_model_version("m-sdk", n, request(approval_status=o)))
        assert (err.status_code, err.code) == (400, "InvalidApprovalStatus.Terminal")
    assert emu.store.get_pai_version("m-sdk", "1.2.0")["ApprovalStatus"] == "Approved"
    # other fields stay editable; a non-ASCII body is signed and accepted
    client.update_model_version("m-sdk", "1.2.0", request(version_description="模型 ok", metrics={"auc": 0.9}))
    assert emu.store.get_pai_version("m-sdk", "1.2.0")["VersionDescription"] == "模型 ok"
    err = ali_error(lambda: client.update_model_version("m-sdk", "1.1.0", request(approval_status="Maybe")))
    assert (err.status_code, err.code) == (400, "InvalidParameter")


def test_pai_list_models_and_get_model(emu: Any) -> None:
    from alibabacloud_aiworkspace20210204 import models

    client = ali_client(emu)
    body = client.list_models(models.ListModelsRequest(workspace_id="ws-sdk")).body
    assert body.total_count == 2 and {m.model_id for m in body.models} == {"m-sdk", "m-gen"}
    exact = client.list_models(models.ListModelsRequest(model_name='"sdk-model"')).body
    assert [m.model_id for m in exact.models] == ["m-sdk"]
    fuzzy = client.list_models(models.ListModelsRequest(model_name="SPEC")).body
    assert [m.model_id for m in fuzzy.models] == [SPECIAL_MODEL]
    paged = client.list_models(models.ListModelsRequest(page_number=2, page_size=2)).body
    assert paged.total_count == 3 and len(paged.models) == 1
    model = client.get_model("m-gen", GetModelRequest()).body
    assert model.model_id == "m-gen" and model.latest_version.version_name == "gen-000035"


# ------------------------------------------------------------------------------------------------ PAI, refused


def test_pai_wrong_secret(emu: Any) -> None:
    err = ali_error(lambda: ali_client(emu, secret="not-the-secret").get_model_version("m-sdk", "1.0.0", gmv()))
    assert (err.status_code, err.code) == (400, "SignatureDoesNotMatch")


def test_pai_unknown_key(emu: Any) -> None:
    err = ali_error(lambda: ali_client(emu, key="LTAIunknown").get_model_version("m-sdk", "1.0.0", gmv()))
    assert (err.status_code, err.code) == (400, "InvalidAccessKeyId.NotFound")


def test_pai_tampered_signature(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from alibabacloud_tea_openapi.utils import Utils

    original = Utils.get_authorization

    def tampered(*args: Any) -> str:
        auth: str = original(*args)
        return auth[:-1] + ("0" if auth[-1] != "0" else "1")

    monkeypatch.setattr(Utils, "get_authorization", staticmethod(tampered))
    before = emu.request_log.count("pai.GetModelVersion", authenticated=False)
    err = ali_error(lambda: ali_client(emu).get_model_version("m-sdk", "1.0.0", gmv()))
    assert (err.status_code, err.code) == (400, "SignatureDoesNotMatch")
    assert emu.request_log.count("pai.GetModelVersion", authenticated=False) == before + 1


def test_pai_stale_date(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from alibabacloud_tea_openapi.utils import Utils

    stale = (datetime.now(timezone.utc) - timedelta(minutes=16)).strftime("%Y-%m-%dT%H:%M:%SZ")
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: stale))
    err = ali_error(lambda: ali_client(emu).get_model_version("m-sdk", "1.0.0", gmv()))
    assert (err.status_code, err.code) == (400, "InvalidTimeStamp.Expired")
    # 14 minutes of skew is inside the window
    skewed = (datetime.now(timezone.utc) + timedelta(minutes=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: skewed))
    assert ali_client(emu).get_model_version("m-sdk", "1.0.0", gmv()).status_code == 200


def test_pai_reused_nonce(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from alibabacloud_tea_openapi.utils import Utils

    monkeypatch.setattr(Utils, "get_nonce", staticmethod(lambda: "0123456789abcdef0123456789abcdef"))
    client = ali_client(emu)
    assert client.get_model_version("m-sdk", "1.0.0", gmv()).status_code == 200
    err = ali_error(lambda: client.get_model_version("m-sdk", "1.0.0", gmv()))
    assert (err.status_code, err.code) == (400, "SignatureNonceUsed")


def test_pai_hand_crafted_requests_with_our_signer(emu: Any) -> None:
    """Our own signer with a fixed clock and nonce: same verdicts as through the SDK."""
    import httpx

    from airflow_provider_modelreg.auth import AcsV3Auth

    now = datetime.now(timezone.utc)
    ok = AcsV3Auth(PAI_KEY, PAI_SECRET, clock=lambda: now)
    stale = AcsV3Auth(PAI_KEY, PAI_SECRET, clock=lambda: now - timedelta(minutes=15, seconds=30))
    fixed = AcsV3Auth(PAI_KEY, PAI_SECRET, nonce=lambda: "fixed-nonce-for-our-signer")
    with httpx.Client(base_url=emu.url) as client:
        path = "/api/v1/models/m-sdk/versions"
        assert client.get(path, params={"Label": "prod a*/~"}, auth=ok).status_code == 200
        assert client.get(path, auth=stale).json()["Code"] == "InvalidTimeStamp.Expired"
        assert client.get(path, auth=fixed).status_code == 200
        assert client.get(path, auth=fixed).json()["Code"] == "SignatureNonceUsed"
        request = client.build_request("PUT", "/api/v1/models/m-sdk/versions/1.1.0", json={"VersionDescription": "x"})
        ok.sign(request)
        request = client.build_request(
            "PUT", request.url, headers=request.headers, content=b'{"VersionDescription":"y"}'
        )  # body changed after signing
        answer = client.send(request)
        assert (answer.status_code, answer.json()["Code"]) == (400, "SignatureDoesNotMatch")
        unsigned = client.get(path)
        assert (unsigned.status_code, unsigned.json()["Code"]) == (400, "SignatureDoesNotMatch")


# ------------------------------------------------------------------------------------------------ Huawei


def hw_list(client: Any, hw: Any, model: str = "fm-sdk", **kwargs: Any) -> Any:
    return client.list_model_versions(
        hw.fabric.ListModelVersionsRequest(workspace_id="ws-fab", model_id=model, **kwargs)
    )


def test_hw_list_model_versions_paging(emu: Any, hw_sdk: Any) -> None:
    client = hw_client(emu, hw_sdk)
    seen: list[str] = []
    for offset in range(0, 30, 7):
        page = hw_list(client, hw_sdk, "fm-gen", offset=offset, limit=7)
        assert page.total == 23 and page.x_request_id
        seen += [v.id for v in page.versions]
    assert len(seen) == 23 == len(set(seen))
    every = hw_list(client, hw_sdk, "fm-gen", limit=100)
    assert [v.id for v in every.versions] == seen  # server order: create_time ascending
    created = [v.create_time for v in every.versions]
    assert created == sorted(created)
    default = hw_list(client, hw_sdk, "fm-gen")
    assert len(default.versions) == 10  # default limit


def test_hw_list_model_versions_filters(emu: Any, hw_sdk: Any) -> None:
    client = hw_client(emu, hw_sdk)
    page = hw_list(client, hw_sdk, name="alpha")
    assert page.total == 2 and [v.name for v in page.versions] == ["alpha-one", "alpha-three"]
    assert page.versions[0].config.llm_model_config.model_path == "obs://b/m/1/"
    by_id = hw_list(client, hw_sdk, version_id="00000000-0000-4000-8000-000000000002")
    assert [v.name for v in by_id.versions] == ["beta-two"]
    assert hw_list(client, hw_sdk, name="ALPHA-T").total == 1  # fuzzy, case-insensitive


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"name": "ab"}, {"version_id": "x"}])
def test_hw_invalid_parameter(emu: Any, hw_sdk: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(hw_sdk.exceptions.ClientRequestException) as err:
        hw_list(hw_client(emu, hw_sdk), hw_sdk, **kwargs)
    assert (err.value.status_code, err.value.error_code) == (400, "common.01000001") and err.value.request_id


def test_hw_not_found(emu: Any, hw_sdk: Any) -> None:
    with pytest.raises(hw_sdk.exceptions.ClientRequestException) as err:
        hw_list(hw_client(emu, hw_sdk), hw_sdk, "fm-missing")
    assert (err.value.status_code, err.value.error_code) == (404, "common.01000001")


def test_hw_list_models(emu: Any, hw_sdk: Any) -> None:
    body = hw_client(emu, hw_sdk).list_models(hw_sdk.fabric.ListModelsRequest(workspace_id="ws-fab"))
    assert body.total == 2 and {m.id for m in body.models} == {"fm-sdk", "fm-gen"}
    current = next(m for m in body.models if m.id == "fm-sdk").current_version
    assert current.name == "alpha-three"


@pytest.mark.parametrize("case", ["wrong_sk", "unknown_ak", "tampered", "stale"])
def test_hw_refused(emu: Any, hw_sdk: Any, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    client = hw_client(
        emu,
        hw_sdk,
        ak="UNKNOWNAK0000" if case == "unknown_ak" else FAB_AK,
        sk="wrong" if case == "wrong_sk" else FAB_SK,
    )
    if case == "tampered":
        original = hw_sdk.signer.Signer._sign_string_to_sign

        def tampered(self: Any, string_to_sign: str, key: str) -> str:
            sig: str = original(self, string_to_sign, key)
            return sig[:-1] + ("0" if sig[-1] != "0" else "1")

        monkeypatch.setattr(hw_sdk.signer.Signer, "_sign_string_to_sign", tampered)
    request = hw_sdk.fabric.ListModelVersionsRequest(workspace_id="ws-fab", model_id="fm-sdk")
    invoker = client.list_model_versions_invoker(request)
    if case == "stale":
        stale = (datetime.now(timezone.utc) - timedelta(minutes=16)).strftime("%Y%m%dT%H%M%SZ")
        invoker = invoker.add_header("X-Sdk-Date", stale)
    with pytest.raises(hw_sdk.exceptions.ClientRequestException) as err:
        invoker.invoke()
    assert (err.value.status_code, err.value.error_code) == (401, "APIG.0301")
    assert err.value.request_id


def test_hw_sdk_with_skewed_but_valid_date(emu: Any, hw_sdk: Any) -> None:
    client = hw_client(emu, hw_sdk)
    request = hw_sdk.fabric.ListModelVersionsRequest(workspace_id="ws-fab", model_id="fm-sdk")
    skewed = (datetime.now(timezone.utc) - timedelta(minutes=14)).strftime("%Y%m%dT%H%M%SZ")
    assert client.list_model_versions_invoker(request).add_header("X-Sdk-Date", skewed).invoke().total == 3
