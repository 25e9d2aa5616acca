"""Deployment specs built from a ``ModelVersionRef`` dict: what a deploy task hands to PAI EAS or Fabric.

These are plain functions (no I/O) so that deploy tasks stay small and idempotent: the same version always gives
the same spec and the same service name.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, TypedDict, TypeVar, Unpack

__all__ = [
    "FabricInstanceOptions",
    "eas_service_labels",
    "eas_service_spec",
    "fabric_service_spec",
    "normalise_oss_uri",
    "service_name",
    "stored_record",
]

R = TypeVar("R")


class FabricInstanceOptions(TypedDict, total=False):
    """The options of a Fabric EP service instance besides its name, source and endpoint, as
    :func:`fabric_service_spec` and
    :func:`~airflow_provider_modelreg.hooks.fabric_ep_specs.deploy_instance_body` take them."""

    #: the resource specification (``config.model_instance_config.resource.spec_code``)
    spec_code: str | None
    #: ``resource.min``
    min_instances: int | None
    #: ``resource.max``
    max_instances: int | None
    description: str | None


#: Default EAS processor by PAI FormatType (as the PAI SDK chooses it).
_DEFAULT_PROCESSORS = {
    "PMML": "pmml",
    "SavedModel": "tensorflow_cpu_2.3",
    "TorchScript": "pytorch_cpu_1.6",
    "CaffePrototxt": "caffe_cpu",
    "ONNX": "onnx_cu100",
}
_OSS = re.compile(r"oss://(?P<bucket>[^./]+)\.(?P<endpoint>[^/]+)/(?P<key>.*)")


def normalise_oss_uri(uri: str) -> tuple[str, str | None]:
    """``oss://bucket.endpoint/key`` -> (``oss://bucket/key``, endpoint); other URIs pass unchanged."""
    match = _OSS.fullmatch(uri)
    if match is None:
        return uri, None
    return f"oss://{match['bucket']}/{match['key']}", match["endpoint"]


def service_name(model_id: str, version_name: str, prefix: str = "") -> str:
    """A stable service name, unique per (model, version): lower case letters, digits and ``_``, at most 63
    characters.

    The readable part keeps what it can of the ids; a short hash of the exact ``(model_id, version_name)`` pair
    ends the name, so versions that read alike once lower-cased and stripped ("1.1.0", "1_1_0", "1-1-0") and long
    model ids that would be cut to one prefix still get distinct names. Idempotent deploys rely on it.
    """
    digest = hashlib.sha256(f"{model_id}\x00{version_name}".encode()).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9_]", "_", f"{prefix}{model_id}_{version_name}".lower())
    return f"{readable[: 63 - len(digest) - 1]}_{digest}"


def _processor(ref: dict[str, Any]) -> str | None:
    spec = ref.get("inference_spec") or {}
    for key, value in spec.items():
        if key.lower() == "processor" and value:
            return str(value)
    return _DEFAULT_PROCESSORS.get(str(ref.get("format_type") or ""))


def eas_service_spec(ref: dict[str, Any], *, instance: int = 1, cpu: int = 2, memory: int = 4000) -> dict[str, Any]:
    """The EAS ``CreateService`` body for a PAI version (``model_path`` from ``uri``, ``processor`` from
    ``inference_spec``). The service's labels are not part of it: CreateService takes them as its ``Labels`` query
    parameter (:func:`eas_service_labels`).

    :param ref: ModelVersionRef dict (``registry == "pai"``), as the sensor or operators push it to XCom.
    """
    uri = ref.get("uri")
    if not uri:
        raise ValueError(f"model {ref.get('model_id')} version {ref.get('version_name')} has no Uri to deploy")
    model_path, oss_endpoint = normalise_oss_uri(str(uri))
    spec: dict[str, Any] = {
        "name": service_name(str(ref["model_id"]), str(ref["version_name"])),
        "model_path": model_path,
        "metadata": {"instance": instance, "cpu": cpu, "memory": memory},
    }
    processor = _processor(ref)
    if processor is not None:
        spec["processor"] = processor
    if oss_endpoint is not None:
        spec["oss_endpoint"] = oss_endpoint
    return spec


def eas_service_labels(ref: dict[str, Any]) -> dict[str, str]:
    """The labels of a version's EAS service (CreateService's ``Labels`` query parameter, not the body): the model
    and version it runs.

    :param ref: ModelVersionRef dict (``registry == "pai"``).
    """
    return {"model_id": str(ref["model_id"]), "version_name": str(ref["version_name"])}


def fabric_service_spec(
    ref: dict[str, Any],
    *,
    endpoint_id: str,
    instances: int | None = None,
    name: str | None = None,
    **options: Unpack[FabricInstanceOptions],
) -> dict[str, Any]:
    """The Fabric EP ``DeployServiceInstance`` body for a version (``ServiceInstanceInput`` of
    ``huaweicloudsdkdataartsfabricep`` 3.1.219, in its key order): ``source`` (the model and version), ``name``,
    ``description``, ``endpoint_id``, ``config.model_instance_config.resource`` (``min``, ``max``, ``spec_code``).

    Before issue 23 this returned ``config.resource``, ``model_path`` and ``base_model_type``, which the API does not
    take; ``instances`` (min = max = instances) is kept for those callers. Values are not checked here:
    :func:`~airflow_provider_modelreg.hooks.fabric_ep_specs.deploy_instance_body` checks them.

    :param ref: ModelVersionRef dict (``registry == "fabric"``).
    :param endpoint_id: the inference endpoint to deploy on.
    :param instances: deprecated: ``min_instances`` = ``max_instances`` = ``instances``.
    :param spec_code: the resource specification.
    :param min_instances: ``resource.min`` (default 1, or ``instances``).
    :param max_instances: ``resource.max`` (default ``min_instances``).
    :param name: the instance name (default: stable per model and version, :func:`service_name`).
    :param description: a description.
    """
    unknown = sorted(set(options) - FabricInstanceOptions.__optional_keys__)
    if unknown:
        raise TypeError(f"fabric_service_spec() got an unexpected keyword argument {unknown[0]!r}")
    min_instances, max_instances = options.get("min_instances"), options.get("max_instances")
    spec_code, description = options.get("spec_code"), options.get("description")
    low = min_instances if min_instances is not None else (instances if instances is not None else 1)
    high = max_instances if max_instances is not None else (instances if instances is not None else low)
    resource: dict[str, Any] = {"min": low, "max": high}
    if spec_code is not None:
        resource["spec_code"] = spec_code
    body: dict[str, Any] = {
        "source": {"id": ref["model_id"], "version_id": ref["version_id"]},
        "name": name or service_name(str(ref["model_id"]), str(ref["version_name"] or ref["version_id"]), "svc_"),
    }
    if description is not None:
        body["description"] = description
    body["endpoint_id"] = endpoint_id
    body["config"] = {"model_instance_config": {"resource": resource}}
    return body


def stored_record(record_type: type[R], value: Any) -> R | None:
    """A deploy record (a dataclass) read back from the task state store: None for anything that does not build
    one (a store written by something else); the record type checks its field values itself.

    :param record_type: the record's dataclass.
    :param value: what the store held.
    """
    if not isinstance(value, dict):
        return None
    try:
        return record_type(**value)
    except TypeError:
        return None
