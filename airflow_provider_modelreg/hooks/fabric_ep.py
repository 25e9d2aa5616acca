"""Hook for DataArts Fabric EP (model service instances, ``huaweicloudsdkdataartsfabricep`` 3.1.219): deploy a model
version on an endpoint, read, update (version swap, scale), delete and list instances, on the ``huaweicloud_fabric``
connection and credential sources of :class:`~airflow_provider_modelreg.hooks.fabric.FabricModelRegistryHook`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar, Unpack
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import Connection

from airflow_provider_modelreg.fabric_ep_models import FabricEpCreated, FabricEpInstance, url_secrets
from airflow_provider_modelreg.hooks.base import Listing, check_region, extra_str, mask_secrets, parse_endpoint
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.fabric_connection import FABRIC_REGIONS, located
from airflow_provider_modelreg.hooks.fabric_ep_specs import (
    FabricEpFilter,
    FabricEpUpdate,
    delete_instance_spec,
    deploy_instance_spec,
    list_instances_spec,
    show_instance_spec,
    update_instance_spec,
)
from airflow_provider_modelreg.hooks.specs import Deferred, RequestSpec, known_options

__all__ = ["FABRIC_EP_REGIONS", "FabricEpHook", "fabric_ep_host"]

R = TypeVar("R")

#: Regions of the SDK's table (``DataArtsFabricEpRegion``): the same two as the registry's.
FABRIC_EP_REGIONS = FABRIC_REGIONS
_REGIONAL_HOST = re.compile(r"fabric(?:-ep)?\.([a-z0-9-]+)\.myhuaweicloud\.com")


def fabric_ep_host(region: str) -> str:
    """The SDK's EP host of a region: ``https://fabric-ep.<region>.myhuaweicloud.com``."""
    return f"https://fabric-ep.{region}.myhuaweicloud.com"


def fabric_ep_settings(conn: Connection) -> tuple[str, str | None, str | None]:
    """(base URL, region, workspace id) of EP: the ``ep_endpoint`` extra; else the region's EP host (the ``region``
    extra, or the region of a regional ``endpoint``); else the ``endpoint`` itself (an emulator serving both)."""
    extras = conn.extra_dejson
    region = extra_str(extras, "region")
    if region is not None:
        check_region(region)
    ep_endpoint, endpoint = extra_str(extras, "ep_endpoint"), extra_str(extras, "endpoint")
    regional = None if endpoint is None else _REGIONAL_HOST.fullmatch(urlsplit(endpoint).hostname or "")
    if ep_endpoint is not None:
        base_url = parse_endpoint(ep_endpoint)
    elif region is None and regional is not None:
        region = regional.group(1)
        base_url = fabric_ep_host(region)
    elif region in FABRIC_EP_REGIONS and (endpoint is None or regional is not None):
        base_url = fabric_ep_host(region)
    elif endpoint is not None:
        base_url = parse_endpoint(endpoint)
    else:
        base_url = None
    return located(base_url, region, extras, known="the EP SDK's regions", setting="ep_endpoint", host=_REGIONAL_HOST)


class FabricEpHook(FabricModelRegistryHook):
    """Talks to DataArts Fabric EP (``fabric-ep.<region>.myhuaweicloud.com``) with the registry hook's signing:
    AK/SK, IAM token or a credential source, as the ``huaweicloud_fabric`` connection's ``auth_type`` says.

    Connection extras as for the registry, plus ``ep_endpoint`` (full URL overriding the EP host rule; ``http://``
    only for a local emulator). Without it: the region's EP host (``region`` extra, or the region of a regional
    ``endpoint``), else the ``endpoint`` itself.

    An instance's ``url.address`` may carry a token: each one is registered with Airflow's secrets masker as soon as
    an answer carries it; :meth:`~airflow_provider_modelreg.fabric_ep_models.FabricEpInstance.to_output` masks it.

    :param fabric_conn_id: Airflow connection id.
    """

    hook_name = "Huawei Cloud DataArts Fabric EP"

    def __init__(self, fabric_conn_id: str = FabricModelRegistryHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(fabric_conn_id, **kwargs)

    def _settings(self, conn: Connection) -> tuple[str, str | None, str | None]:
        return fabric_ep_settings(conn)

    def _ws(self, workspace_id: str | None, build: Callable[[str], RequestSpec[R]]) -> Deferred[R]:
        return lambda conn: build(self._workspace(workspace_id, conn))

    @staticmethod
    def _masked(instance: FabricEpInstance) -> FabricEpInstance:
        mask_secrets(*url_secrets(instance.address))
        return instance

    # -- operations: each a spec (hooks/fabric_ep_specs.py) run by the sync or async executor

    def deploy_instance(self, body: dict[str, Any], *, workspace_id: str | None = None) -> FabricEpCreated:
        """DeployServiceInstance (not retried: a lost answer is resolved by :meth:`list_instances`).

        :param body: :func:`~airflow_provider_modelreg.hooks.fabric_ep_specs.deploy_instance_body`.
        :param workspace_id: default: the connection's.
        """
        return self._run(self._ws(workspace_id, lambda ws: deploy_instance_spec(ws, body)))

    def get_instance(self, instance_id: str, *, workspace_id: str | None = None) -> FabricEpInstance:
        """ShowServiceInstanceDetail (missing: :class:`~airflow_provider_modelreg.errors.RegistryNotFoundError`)."""
        return self._masked(self._run(self._ws(workspace_id, lambda ws: show_instance_spec(ws, instance_id))))

    async def aget_instance(self, instance_id: str, *, workspace_id: str | None = None) -> FabricEpInstance:
        """Async twin of :meth:`get_instance`."""
        return self._masked(await self._arun(self._ws(workspace_id, lambda ws: show_instance_spec(ws, instance_id))))

    def update_instance(
        self, instance_id: str, *, workspace_id: str | None = None, **changes: Unpack[FabricEpUpdate]
    ) -> FabricEpCreated:
        """UpdateServiceInstance: a new ``source`` (``model_id`` and ``version_id``), name, description or
        ``max_instances``."""
        known_options(changes, FabricEpUpdate, "update_instance")  # a misspelt option fails at the call, as before
        return self._run(self._ws(workspace_id, lambda ws: update_instance_spec(ws, instance_id, **changes)))

    def delete_instance(self, instance_id: str, *, workspace_id: str | None = None) -> str | None:
        """DeleteServiceInstance; returns the request id."""
        return self._run(self._ws(workspace_id, lambda ws: delete_instance_spec(ws, instance_id)))

    def list_instances(
        self,
        *,
        workspace_id: str | None = None,
        max_results: int | None = None,
        page_size: int = 100,
        **filters: Unpack[FabricEpFilter],
    ) -> Listing[FabricEpInstance]:
        """ListServicesInstances over every page, filtered by ``source_id``, ``version_id``, ``endpoint_id``,
        ``name``."""
        return self._collect(
            lambda conn: list_instances_spec(
                self._workspace(workspace_id, conn), filters, max_results=max_results, page_size=page_size
            )
        )

    def test_connection(self) -> tuple[bool, str]:
        """List one instance of the connection's workspace (one attempt, 10 s deadline)."""
        try:
            if self.workspace_id is None:
                return False, "Set the workspace_id extra: the connection test lists that workspace's instances"
            with self.probing():
                found = self.list_instances(max_results=1, page_size=1)
        except Exception as exc:
            return False, str(exc)
        return True, f"Connection OK: Fabric EP reachable ({len(found)} instance(s) in the first page)"
