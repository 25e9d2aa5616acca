"""Typed answers of DataArts Fabric EP (the service-instance API of ``huaweicloudsdkdataartsfabricep`` 3.1.219):
pydantic models keeping unknown fields (``extra="allow"``).

An instance's ``status`` is a :class:`FabricEpStatus`: a value outside the ten the SDK's ``StatusEnum`` lists makes
the answer unreadable (a :class:`~airflow_provider_modelreg.errors.RegistryResponseError`), never a success.
``url`` is the SDK's ``Url`` object (``name``, ``address``, ``type``); :func:`masked_url` takes any credential out
of an address before it reaches XCom, a log or an event.
"""

from __future__ import annotations

import enum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field

from airflow_provider_modelreg.models import _Wire

__all__ = [
    "FabricEpCreated",
    "FabricEpInstance",
    "FabricEpInstancePage",
    "FabricEpSource",
    "FabricEpStatus",
    "FabricEpUrl",
    "masked_url",
    "url_secrets",
]

#: query parameters of a URL whose value is a credential
_SECRET_PARAM = ("token", "key", "secret", "sign", "auth", "password", "credential")
MASK = "***"


class FabricEpStatus(str, enum.Enum):
    """``status`` of a service instance (the SDK's ``StatusEnum``)."""

    PENDING = "PENDING"
    CREATING = "CREATING"
    RUNNING = "RUNNING"
    UPDATING = "UPDATING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    DELETING = "DELETING"
    DELETED = "DELETED"

    def is_transient(self) -> bool:
        """On its way to another status (a waiter keeps polling)."""
        return self in (
            FabricEpStatus.PENDING,
            FabricEpStatus.CREATING,
            FabricEpStatus.UPDATING,
            FabricEpStatus.STOPPING,
            FabricEpStatus.DELETING,
        )

    def is_gone(self) -> bool:
        """``DELETING`` or ``DELETED``."""
        return self in (FabricEpStatus.DELETING, FabricEpStatus.DELETED)


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_PARAM)


def url_secrets(address: str | None) -> list[str]:
    """The credentials an address carries (a userinfo password, the values of token-like query parameters)."""
    if not address:
        return []
    try:
        parts = urlsplit(address)
        found = [parts.password] if parts.password else []
    except ValueError:
        return []
    for pairs in (parts.query, parts.fragment):  # a fragment can carry a token too (``#access_token=...``)
        found += [value for name, value in parse_qsl(pairs, keep_blank_values=True) if _secret_name(name) and value]
    return found


def _masked_pairs(text: str) -> str:
    """``name=value&...`` with every token-like value replaced by ``***`` (unchanged when none is)."""
    pairs = parse_qsl(text, keep_blank_values=True)
    if not any(_secret_name(name) for name, _ in pairs):
        return text
    return urlencode([(name, MASK if _secret_name(name) else value) for name, value in pairs], safe="*")


def masked_url(address: str | None) -> str | None:
    """``address`` with a userinfo password and every token-like value of its query or fragment replaced by
    ``***``."""
    if not address:
        return address
    try:
        parts = urlsplit(address)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return MASK  # not a URL we can read: nothing of it is shown
    return urlunsplit((parts.scheme, netloc, parts.path, _masked_pairs(parts.query), _masked_pairs(parts.fragment)))


class FabricEpCreated(_Wire):
    """DeployServiceInstance's answer (and UpdateServiceInstance's): the instance id."""

    id: str
    request_id: str | None = Field(default=None, exclude=True)


class FabricEpSource(_Wire):
    """``SourceRef``: the model (``id``) and its version (``version_id``) an instance serves."""

    id: str | None = None
    version_id: str | None = None


class FabricEpUrl(_Wire):
    """``Url``: where the instance answers (``address``)."""

    name: str | None = None
    address: str | None = None
    type: str | None = None


class FabricEpInstance(_Wire):
    """``ShowServiceInstanceDetailResponse`` (and a ``ServiceInstanceBriefInfo`` of a listing: no url, no error)."""

    id: str
    status: FabricEpStatus
    name: str | None = None
    description: str | None = None
    endpoint_id: str | None = None
    source: FabricEpSource | None = None
    url: FabricEpUrl | None = None
    error_code: str | None = None
    error_msg: str | None = None
    create_time: Any = None
    update_time: Any = None

    @property
    def model_id(self) -> str | None:
        """The model the instance serves."""
        return None if self.source is None else self.source.id

    @property
    def version_id(self) -> str | None:
        """The version the instance serves."""
        return None if self.source is None else self.source.version_id

    @property
    def address(self) -> str | None:
        """``url.address``, unmasked (it may carry a token: use :meth:`to_output` for anything shown)."""
        return None if self.url is None else self.url.address

    def to_output(self) -> dict[str, Any]:
        """A JSON-safe summary for XCom, logs and events: the url's credentials masked."""
        return {
            "instance_id": self.id,
            "name": self.name,
            "status": self.status.value,
            "endpoint_id": self.endpoint_id,
            "model_id": self.model_id,
            "version_id": self.version_id,
            "url": masked_url(self.address),
            "error_code": self.error_code,
            "error_msg": self.error_msg,
        }


class FabricEpInstancePage(_Wire):
    """``ListServicesInstancesResponse``: one page and the ``total`` of matches."""

    total: int | None = None
    service_instances: list[FabricEpInstance] = Field(default_factory=list)
