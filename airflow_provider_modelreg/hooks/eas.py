"""Hook for Alibaba Cloud PAI-EAS (Elastic Algorithm Service, API 2021-07-01): create, describe, update, roll
back, release (traffic), lock, delete and list model services, on the same ``pai`` connection and credential sources as
:class:`~airflow_provider_modelreg.hooks.pai.PaiModelRegistryHook`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Unpack

from airflow.providers.common.compat.sdk import Connection

from airflow_provider_modelreg.eas_models import (
    EasAnswer,
    EasEventPage,
    EasSafetyLock,
    EasService,
    EasServiceVersion,
    EasTrafficState,
    EasUpdateType,
)
from airflow_provider_modelreg.errors import RegistryConnectionConfigError
from airflow_provider_modelreg.hooks.base import Listing
from airflow_provider_modelreg.hooks.eas_specs import (
    EasCreateOptions,
    EasEventQuery,
    EasServiceQuery,
    create_service_spec,
    delete_service_spec,
    describe_service_events_spec,
    describe_service_spec,
    list_service_versions_spec,
    list_services_spec,
    release_service_spec,
    update_service_safety_lock_spec,
    update_service_spec,
    update_service_version_spec,
)
from airflow_provider_modelreg.hooks.pai import PaiSignedHook
from airflow_provider_modelreg.hooks.specs import RequestSpec

__all__ = ["EAS_API_VERSION", "EAS_MAPPED_REGIONS", "PaiEasHook", "eas_host"]

EAS_API_VERSION = "2021-07-01"

#: Regions of the official SDK's endpoint map (``alibabacloud-eas20210701`` 7.0.0): ``pai-eas.<region>``, whatever
#: the network.
EAS_MAPPED_REGIONS = frozenset(
    "cn-beijing cn-zhangjiakou cn-hangzhou cn-shanghai cn-shenzhen cn-hongkong ap-southeast-1 ap-southeast-5 "
    "us-east-1 us-west-1 eu-central-1 ap-south-1 cn-shanghai-finance-1 cn-north-2-gov-1 cn-chengdu".split()
)


def eas_host(region: str, network: str | None = None) -> str:
    """The SDK's host rule: ``pai-eas.<region>.aliyuncs.com`` for a mapped region, else the endpoint rule
    ``eas[-<network>].<region>.aliyuncs.com``."""
    if region in EAS_MAPPED_REGIONS:
        return f"pai-eas.{region}.aliyuncs.com"
    if network in (None, "", "public"):
        return f"eas.{region}.aliyuncs.com"
    return f"eas-{network}.{region}.aliyuncs.com"


class PaiEasHook(PaiSignedHook):
    """Talks to PAI-EAS with ACS3-HMAC-SHA256 signed requests (``x-acs-version: 2021-07-01``).

    Connection (type ``pai``, the registry's): login/password or the ``credential_source`` extras sign; extras
    ``region`` (the ``ClusterId`` of every service path: required, unless the ``eas_endpoint`` host names it),
    ``network`` (``public``/``vpc``), ``eas_endpoint`` (full URL overriding the SDK's host rule; ``http://`` only
    for a local emulator), ``workspace_id`` (CreateService's default), and the transport settings of
    :class:`~airflow_provider_modelreg.hooks.base.ModelRegistryHookBase` (``max_attempts``, ``call_timeout`` ...).

    A service's ``AccessToken`` is registered with Airflow's secrets masker as soon as an answer carries it, and is
    kept in a :class:`~pydantic.SecretStr` that no dump includes: use
    :meth:`~airflow_provider_modelreg.eas_models.EasService.to_output` for XCom.

    :param pai_conn_id: Airflow connection id.
    """

    hook_name = "Alibaba Cloud PAI-EAS"

    api_version = EAS_API_VERSION
    endpoint_extra = "eas_endpoint"
    regional_host = re.compile(r"(?:pai-eas|eas(?:-[a-z]+)?)\.([a-z0-9-]+)\.aliyuncs\.com")

    @staticmethod
    def default_host(region: str, network: str | None) -> str:
        """The SDK's EAS host (:func:`eas_host`)."""
        return eas_host(region, network)

    def _cluster(self, conn: Connection) -> str:
        region = self._settings(conn)[1]
        if region is None:
            raise RegistryConnectionConfigError(
                "region", "is required for EAS (the ClusterId of every service); set the region extra"
            )
        return region

    @property
    def cluster_id(self) -> str:
        """The ``ClusterId`` of service paths: the connection's region."""
        return self._cluster(self.connection)

    async def acluster_id(self) -> str:
        """Async twin of :attr:`cluster_id`."""
        return self._cluster(await self.aconnection())

    def _create(
        self, conn: Connection, service: Mapping[str, Any], options: EasCreateOptions
    ) -> RequestSpec[EasService]:
        if options.get("workspace_id") is None:
            options = {**options, "workspace_id": self._settings(conn)[2]}
        return create_service_spec(service, **options)

    # -- operations: each a spec (hooks/eas_specs.py) run by the sync or async executor

    def create_service(self, service: Mapping[str, Any], **options: Unpack[EasCreateOptions]) -> EasService:
        """CreateService (not retried: a lost answer is resolved by :meth:`describe_service`, not a second create).

        :param service: the service JSON (``name``, ``model_path``, ``processor``, ``metadata`` ...).
        :param options: ``labels`` (the ``Labels`` query parameter), ``workspace_id`` (default: the connection's
            ``workspace_id`` extra), ``develop`` (:class:`~airflow_provider_modelreg.hooks.eas_specs.EasCreateOptions`).
        """
        return self._run(self._create(self.connection, service, options))

    async def acreate_service(self, service: Mapping[str, Any], **options: Unpack[EasCreateOptions]) -> EasService:
        """Async twin of :meth:`create_service`."""
        return await self._arun(self._create(await self.aconnection(), service, options))

    def describe_service(self, service_name: str) -> EasService:
        """DescribeService (a missing service: :class:`~airflow_provider_modelreg.errors.RegistryNotFoundError`)."""
        return self._run(describe_service_spec(self.cluster_id, service_name))

    async def adescribe_service(self, service_name: str) -> EasService:
        """Async twin of :meth:`describe_service`."""
        return await self._arun(describe_service_spec(await self.acluster_id(), service_name))

    def update_service(
        self, service_name: str, config: Mapping[str, Any], *, update_type: EasUpdateType = "merge"
    ) -> EasAnswer:
        """UpdateService (``merge`` by default, or ``replace``); makes a new ``LatestVersion``."""
        return self._run(update_service_spec(self.cluster_id, service_name, config, update_type=update_type))

    async def aupdate_service(
        self, service_name: str, config: Mapping[str, Any], *, update_type: EasUpdateType = "merge"
    ) -> EasAnswer:
        """Async twin of :meth:`update_service`."""
        cluster = await self.acluster_id()
        return await self._arun(update_service_spec(cluster, service_name, config, update_type=update_type))

    def update_service_version(self, service_name: str, version: int) -> EasAnswer:
        """UpdateServiceVersion: roll the service to an earlier ``version``."""
        return self._run(update_service_version_spec(self.cluster_id, service_name, version))

    async def aupdate_service_version(self, service_name: str, version: int) -> EasAnswer:
        """Async twin of :meth:`update_service_version`."""
        return await self._arun(update_service_version_spec(await self.acluster_id(), service_name, version))

    def release_service(
        self, service_name: str, *, traffic_state: EasTrafficState | None = None, weight: int | None = None
    ) -> EasAnswer:
        """ReleaseService: the traffic state (``grouping``/``standalone``) and weight in the service group."""
        return self._run(
            release_service_spec(self.cluster_id, service_name, traffic_state=traffic_state, weight=weight)
        )

    async def arelease_service(
        self, service_name: str, *, traffic_state: EasTrafficState | None = None, weight: int | None = None
    ) -> EasAnswer:
        """Async twin of :meth:`release_service`."""
        spec = release_service_spec(await self.acluster_id(), service_name, traffic_state=traffic_state, weight=weight)
        return await self._arun(spec)

    def update_service_safety_lock(self, service_name: str, lock: EasSafetyLock) -> EasAnswer:
        """UpdateServiceSafetyLock: ``all`` (every change refused), ``dangerous`` (delete and stop refused) or
        ``none``."""
        return self._run(update_service_safety_lock_spec(self.cluster_id, service_name, lock))

    async def aupdate_service_safety_lock(self, service_name: str, lock: EasSafetyLock) -> EasAnswer:
        """Async twin of :meth:`update_service_safety_lock`."""
        return await self._arun(update_service_safety_lock_spec(await self.acluster_id(), service_name, lock))

    def delete_service(self, service_name: str) -> EasAnswer:
        """DeleteService."""
        return self._run(delete_service_spec(self.cluster_id, service_name))

    async def adelete_service(self, service_name: str) -> EasAnswer:
        """Async twin of :meth:`delete_service`."""
        return await self._arun(delete_service_spec(await self.acluster_id(), service_name))

    def describe_service_events(self, service_name: str, **query: Unpack[EasEventQuery]) -> EasEventPage:
        """DescribeServiceEvent, one page (``event_type="Warning"`` for what a failure report quotes; the filters
        of :class:`~airflow_provider_modelreg.hooks.eas_specs.EasEventQuery`)."""
        return self._run(describe_service_events_spec(self.cluster_id, service_name, **query))

    async def adescribe_service_events(self, service_name: str, **query: Unpack[EasEventQuery]) -> EasEventPage:
        """Async twin of :meth:`describe_service_events`."""
        return await self._arun(describe_service_events_spec(await self.acluster_id(), service_name, **query))

    def list_services(self, **query: Unpack[EasServiceQuery]) -> Listing[EasService]:
        """ListServices over every page (paged and checked like the registry's listings; the filters of
        :class:`~airflow_provider_modelreg.hooks.eas_specs.EasServiceQuery`: ``label`` keeps the services carrying
        every one of its labels)."""
        return self._collect(list_services_spec(**query))

    async def alist_services(self, **query: Unpack[EasServiceQuery]) -> Listing[EasService]:
        """Async twin of :meth:`list_services`."""
        return await self._acollect(list_services_spec(**query))

    def list_service_versions(
        self, service_name: str, *, max_results: int | None = None, page_size: int = 100
    ) -> Listing[EasServiceVersion]:
        """ListServiceVersions over every page."""
        spec = list_service_versions_spec(self.cluster_id, service_name, max_results=max_results, page_size=page_size)
        return self._collect(spec)

    async def alist_service_versions(
        self, service_name: str, *, max_results: int | None = None, page_size: int = 100
    ) -> Listing[EasServiceVersion]:
        """Async twin of :meth:`list_service_versions`."""
        cluster = await self.acluster_id()
        spec = list_service_versions_spec(cluster, service_name, max_results=max_results, page_size=page_size)
        return await self._acollect(spec)

    def test_connection(self) -> tuple[bool, str]:
        """List one service to prove the credentials and the EAS endpoint work (one attempt, 10 s deadline)."""
        try:
            with self.probing():
                services = self.list_services(max_results=1, page_size=1)
        except Exception as exc:
            return False, str(exc)
        return True, f"Connection OK: PAI-EAS reachable ({len(services)} service(s) in the first page)"
