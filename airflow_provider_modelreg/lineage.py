"""Lineage of model artifacts and registry versions: ``oss://`` and ``obs://`` asset URIs (normalised so that lineage
from PAI joins lineage from Spark or OSS jobs) and the OpenLineage datasets of a task's model versions.

Registered in ``get_provider_info`` under ``asset-uris`` (and ``dataset-uris`` for Airflow 2): Airflow calls
:func:`sanitize_uri` on every ``Asset("oss://...")`` / ``Asset("obs://...")``, and the OpenLineage provider calls
:func:`convert_asset_to_openlineage`. The OpenLineage names follow the naming spec's blob stores (``s3://{bucket}``
with the object key as name): namespace ``oss://{bucket}`` or ``obs://{bucket}``, name the key. PAI writes the OSS
endpoint into the authority (``oss://bucket.oss-cn-hangzhou.aliyuncs.com/key``); the bucket alone is the namespace.
Nothing here imports OpenLineage unless it is called by OpenLineage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from airflow.providers.common.compat.assets import Asset

__all__ = [
    "ObjectLocation",
    "convert_asset_to_openlineage",
    "create_asset",
    "fabric_ep_instance_dataset",
    "object_location",
    "sanitize_uri",
    "service_dataset",
    "version_datasets",
]

#: OSS bucket names: 3-63 of lower-case letters, digits and ``-``, starting and ending with a letter or digit.
_OSS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
#: OBS bucket names: as OSS, and ``.`` between labels (never ``..``, ``.-`` or ``-.``).
_OBS_BUCKET = re.compile(r"(?!.*(?:\.\.|\.-|-\.))[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: The endpoints a bucket may be addressed through (virtual-hosted style): OSS regional, internal, accelerated.
_ENDPOINTS = {
    "oss": re.compile(r"oss(?:-[a-z0-9-]+)?\.aliyuncs\.com"),
    "obs": re.compile(r"obs(?:\.[a-z0-9-]+)?\.(?:my)?huaweicloud\.(?:com|eu)"),
}
_BUCKETS = {"oss": _OSS_BUCKET, "obs": _OBS_BUCKET}


@dataclass(frozen=True)
class ObjectLocation:
    """Where an object is: ``scheme://bucket/key``, and the endpoint its URI named, if any."""

    scheme: str
    bucket: str
    key: str
    endpoint: str | None = None

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"


def _split_authority(scheme: str, authority: str) -> tuple[str, str | None]:
    """(bucket, endpoint) of ``bucket`` or ``bucket.<endpoint>``; ValueError for anything else."""
    host = authority.rpartition("@")[2]
    bucket, endpoint = host, None
    for index in [i for i, char in enumerate(host) if char == "."]:
        if _ENDPOINTS[scheme].fullmatch(host[index + 1 :]):
            bucket, endpoint = host[:index], host[index + 1 :]
            break
    if not bucket:
        raise ValueError(f"URI format {scheme}:// must contain a bucket name")
    if _BUCKETS[scheme].fullmatch(bucket) is None:
        raise ValueError(f"{scheme}:// bucket {bucket!r} is not a valid bucket name")
    return bucket, endpoint


def object_location(uri: str) -> ObjectLocation | None:
    """The location of an ``oss://`` or ``obs://`` URI (endpoint split off, bucket checked); None for another
    scheme. ValueError when the URI names no valid bucket."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in _ENDPOINTS:
        return None
    bucket, endpoint = _split_authority(scheme, parts.netloc)
    return ObjectLocation(scheme, bucket, parts.path.lstrip("/"), endpoint)


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's URI handler for ``oss`` and ``obs`` assets: the bucket alone as the authority (an endpoint in it is
    dropped, so one object has one asset URI however it was addressed); ValueError without a valid bucket."""
    bucket, _ = _split_authority(uri.scheme.lower(), uri.netloc)
    return uri._replace(netloc=bucket)


def create_asset(*, bucket: str, key: str, scheme: str = "oss", extra: dict[str, Any] | None = None) -> Asset:
    """An ``oss://bucket/key`` (or ``obs://``) asset."""
    from airflow.providers.common.compat.assets import Asset

    return Asset(uri=f"{scheme}://{bucket}/{key}", extra=extra)


def _object_dataset(location: ObjectLocation) -> Any:
    """An object's OpenLineage dataset: namespace ``scheme://bucket``, name the key (``/`` for the bucket)."""
    return _dataset(f"{location.scheme}://{location.bucket}", location.key or "/")


def _dataset(namespace: str, name: str) -> Any:
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return Dataset(namespace=namespace, name=name)


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> Any:
    """The OpenLineage dataset of an ``oss://`` / ``obs://`` asset: namespace ``scheme://bucket``, name the key."""
    location = object_location(asset.uri)
    if location is None:
        raise ValueError(f"not an oss:// or obs:// asset: {asset.uri}")
    return _object_dataset(location)


def _registry_dataset(ref: dict[str, Any]) -> Any:
    """The registry version itself: namespace ``pai://{region}/{workspace}`` (or ``huaweicloud-fabric://``), name
    ``{model_id}/{version}`` (PAI's version name, Fabric's version id)."""
    scheme = "pai" if ref.get("registry") == "pai" else "huaweicloud-fabric"
    namespace = f"{scheme}://{ref.get('region') or 'unknown'}/{ref.get('workspace_id') or 'unknown'}"
    return _dataset(namespace, f"{ref['model_id']}/{ref['version_id']}")


def version_datasets(refs: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(inputs, outputs) of a task that read or wrote these ``ModelVersionRef`` dicts: each version's artifact
    (``oss://``/``obs://``, endpoint stripped; other URIs as they are) in, the registry version out."""
    inputs, outputs = [], []
    for ref in refs:
        uri = ref.get("uri")
        if uri:
            try:
                location = object_location(uri)
            except ValueError:
                location = None
            if location is not None:
                inputs.append(_object_dataset(location))
            else:
                parts = urlsplit(uri)
                inputs.append(_dataset(f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") or "/"))
        outputs.append(_registry_dataset(ref))
    return inputs, outputs


def service_dataset(service: dict[str, Any]) -> Any:
    """A deployed PAI-EAS service: namespace ``pai-eas://{region}``, name the service name."""
    return _dataset(f"pai-eas://{service.get('region') or 'unknown'}", str(service["service_name"]))


def fabric_ep_instance_dataset(instance: dict[str, Any]) -> Any:
    """A deployed DataArts Fabric EP service instance: namespace ``fabric-ep://{region}``, name the instance name
    (its id when the service gave no name).

    :param instance: the deploy's instance summary (``instance_id``, ``name``, ``region``).
    """
    name = instance.get("name") or instance["instance_id"]
    return _dataset(f"fabric-ep://{instance.get('region') or 'unknown'}", str(name))
