"""Lineage (issue 24): ``oss://`` and ``obs://`` asset URIs registered under ``asset-uris`` (the endpoint PAI writes
into the authority dropped, the bucket checked), their OpenLineage datasets through the OpenLineage provider's own
translation, and the datasets the registry operators report, read by the provider's ``DefaultExtractor`` after a
run against the emulator."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from helpers import build_seed, fabric_conn, fabric_version, pai_conn, pai_version
from test_operators import context

from airflow_provider_modelreg.lineage import ObjectLocation, object_location, sanitize_uri, version_datasets
from airflow_provider_modelreg.operators.fabric import FabricGetModelVersionOperator, FabricListModelVersionsOperator
from airflow_provider_modelreg.operators.pai import (
    PaiGetModelVersionOperator,
    PaiListModelVersionsOperator,
    PaiUpdateModelVersionApprovalOperator,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "oss://models.oss-cn-hangzhou.aliyuncs.com/a/b/",
            ObjectLocation("oss", "models", "a/b/", "oss-cn-hangzhou.aliyuncs.com"),
        ),
        (
            "oss://models.oss-cn-hangzhou-internal.aliyuncs.com/k",
            ObjectLocation("oss", "models", "k", "oss-cn-hangzhou-internal.aliyuncs.com"),
        ),
        (
            "oss://models.oss-accelerate.aliyuncs.com/k",
            ObjectLocation("oss", "models", "k", "oss-accelerate.aliyuncs.com"),
        ),
        ("oss://models/k", ObjectLocation("oss", "models", "k")),
        ("OSS://models/k", ObjectLocation("oss", "models", "k")),
        (
            "obs://my.bucket.obs.cn-north-4.myhuaweicloud.com/w",
            ObjectLocation("obs", "my.bucket", "w", "obs.cn-north-4.myhuaweicloud.com"),
        ),
        ("obs://my.bucket/w", ObjectLocation("obs", "my.bucket", "w")),
        ("obs://weights/", ObjectLocation("obs", "weights", "")),
        ("s3://models/k", None),
        ("https://example.com/k", None),
    ],
)
def test_object_locations_split_the_endpoint_off_the_bucket(uri: str, expected: ObjectLocation | None) -> None:
    assert object_location(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "oss:///k",  # no bucket
        "oss://Models/k",  # upper case
        "oss://my_models/k",  # underscore
        "oss://ab/k",  # too short
        "oss://my.models/k",  # OSS bucket names have no dots
        "oss://-models/k",
        "obs://my..bucket/k",
        "obs://my.-bucket/k",
        "oss://models.evil.example.com/k",  # an authority that is no OSS endpoint is a bucket name, and not a valid one
        "oss://" + "a" * 64 + "/k",
    ],
)
def test_a_uri_without_a_valid_bucket_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="bucket"):
        object_location(uri)
    with pytest.raises(ValueError, match="bucket"):
        sanitize_uri(urlsplit(uri))


def test_airflow_normalises_oss_and_obs_assets_through_the_provider() -> None:
    from airflow.providers.common.compat.assets import Asset

    from_pai = Asset("oss://models.oss-cn-hangzhou.aliyuncs.com/fraud/1.1.0/")
    from_spark = Asset("oss://models/fraud/1.1.0")
    assert from_pai.uri == from_spark.uri == "oss://models/fraud/1.1.0"  # one object, one asset
    assert Asset("obs://weights.obs.cn-north-4.myhuaweicloud.com/q/7").uri == "obs://weights/q/7"
    from airflow_provider_modelreg._compat import HAS_ASSET_WATCHERS as AIRFLOW_3

    if AIRFLOW_3:
        with pytest.raises(ValueError, match="bucket"):
            Asset("oss://Not_A_Bucket/k")
    else:  # Airflow 2 warns ("In Airflow 3, this will raise"), unless [core] strict_dataset_uri_validation
        with pytest.warns(UserWarning, match="bucket"):
            Asset("oss://Not_A_Bucket/k")


def test_the_openlineage_provider_translates_our_assets_to_datasets() -> None:
    from airflow.providers.common.compat.assets import Asset
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset

    dataset = translate_airflow_asset(Asset("oss://models.oss-cn-hangzhou.aliyuncs.com/fraud/1.1.0/"), None)
    assert (dataset.namespace, dataset.name) == ("oss://models", "fraud/1.1.0")
    dataset = translate_airflow_asset(Asset("obs://weights/q/7"), None)
    assert (dataset.namespace, dataset.name) == ("obs://weights", "q/7")
    dataset = translate_airflow_asset(Asset("oss://models"), None)
    assert (dataset.namespace, dataset.name) == ("oss://models", "/")


def test_version_datasets_keep_other_uris_as_they_are() -> None:
    refs = [
        {
            "registry": "pai",
            "region": "cn-hangzhou",
            "workspace_id": "ws",
            "model_id": "m",
            "version_id": "1.0.0",
            "uri": "https://models.example.com/m/1.0.0",
        },
        {
            "registry": "fabric",
            "region": None,
            "workspace_id": None,
            "model_id": "fm",
            "version_id": "v-1",
            "uri": None,
        },
    ]
    inputs, outputs = version_datasets(refs)
    assert [(d.namespace, d.name) for d in inputs] == [("https://models.example.com", "m/1.0.0")]
    assert [(d.namespace, d.name) for d in outputs] == [
        ("pai://cn-hangzhou/ws", "m/1.0.0"),
        ("huaweicloud-fabric://unknown/unknown", "fm/v-1"),
    ]


# ------------------------------------------------------------------------ operators, through the extractor


def _seed() -> dict[str, Any]:
    seed = build_seed()
    versions = seed["pai"]["models"][0]["Versions"]
    versions.append(pai_version("2.0.0", day=9, Uri="oss://fraud-models.oss-cn-hangzhou.aliyuncs.com/main/2.0.0/"))
    fabric = seed["fabric"]["workspaces"][0]["models"][0]["versions"]
    version = fabric_version(9, "lineage-9")
    version["config"]["llm_model_config"]["model_path"] = "obs://llm-weights/qwen/9/"
    fabric.append(version)
    return seed


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=_seed())
    pai_conn(monkeypatch, emulator.url)
    fabric_conn(monkeypatch, emulator.url)
    return emulator


def _lineage(operator: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    from airflow.providers.openlineage.extractors.base import DefaultExtractor

    operator.execute(context())
    lineage = DefaultExtractor(operator).extract_on_complete(None)
    assert lineage is not None
    return [(d.namespace, d.name) for d in lineage.inputs], [(d.namespace, d.name) for d in lineage.outputs]


def test_the_get_operators_report_the_artifact_in_and_the_registry_version_out(emu: Any) -> None:
    model = "m-main"
    inputs, outputs = _lineage(PaiGetModelVersionOperator(task_id="g", model_id=model, version_name="2.0.0"))
    assert inputs == [("oss://fraud-models", "main/2.0.0/")]  # the endpoint is not part of the namespace
    assert len(outputs) == 1 and outputs[0][0].startswith("pai://cn-hangzhou/") and outputs[0][1] == f"{model}/2.0.0"
    inputs, outputs = _lineage(
        FabricGetModelVersionOperator(task_id="f", model_id="fm-1", workspace_id="ws-1", version_name="lineage-9")
    )
    assert inputs == [("obs://llm-weights", "qwen/9/")]
    assert outputs[0][0].startswith("huaweicloud-fabric://") and outputs[0][0].endswith("/ws-1")
    assert outputs[0][1] == "fm-1/00000000-0000-4000-8000-000000000009"


def test_the_list_and_approve_operators_report_every_version_they_return(emu: Any) -> None:
    model = "m-main"
    listed = PaiListModelVersionsOperator(task_id="l", model_id=model, max_results=None)
    inputs, outputs = _lineage(listed)
    assert len(outputs) == len(_seed()["pai"]["models"][0]["Versions"]) and len(inputs) == len(outputs)
    assert ("oss://fraud-models", "main/2.0.0/") in inputs
    approve = PaiUpdateModelVersionApprovalOperator(
        task_id="a", model_id=model, version_name="2.0.0", approval_status="Approved"
    )
    inputs, outputs = _lineage(approve)
    assert inputs == [("oss://fraud-models", "main/2.0.0/")] and outputs[0][1] == f"{model}/2.0.0"
    fabric = FabricListModelVersionsOperator(task_id="fl", model_id="fm-1", workspace_id="ws-1", max_results=1)
    inputs, _ = _lineage(fabric)
    assert inputs == [("obs://llm-weights", "qwen/9/")]  # the newest, the only one returned


def test_the_run_facet_names_each_version_with_its_approval_status(emu: Any) -> None:
    from airflow.providers.openlineage.extractors.base import DefaultExtractor

    approve = PaiUpdateModelVersionApprovalOperator(
        task_id="a", model_id="m-main", version_name="2.0.0", approval_status="Approved"
    )
    approve.execute(context())
    lineage = DefaultExtractor(approve).extract_on_complete(None)
    assert lineage is not None
    facet = lineage.run_facets["modelreg_model_versions"]
    assert [(v["model_id"], v["version_name"], v["approval_status"]) for v in facet.versions] == [
        ("m-main", "2.0.0", "Approved")
    ]
    assert "approved_by" not in facet.versions[0]  # no person decided here
    from openlineage.client.serde import Serde

    as_sent = Serde.to_dict(facet)  # the facet survives the client's serialisation, as the transport sends it
    assert as_sent["versions"][0]["approval_status"] == "Approved" and "_producer" in as_sent
