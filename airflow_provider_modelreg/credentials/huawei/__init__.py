"""Huawei Cloud credential sources for DataArts Fabric: instance metadata, OIDC (CCE workload identity), agency.

Each source mirrors the official ``huaweicloudsdkcore`` (the reference for paths, headers, bodies and response
fields; the tests use it as the oracle where it can be pointed at the emulator):

* ``metadata`` — ``huaweicloudsdkcore/auth/internal.py`` ``MetadataAccessor.get_credential``: ``PUT
  /meta-data/latest/api/token`` with ``X-Metadata-Token-Ttl-Seconds`` (21600), then ``GET
  /openstack/latest/securitykey`` with ``X-Metadata-Token``. A token answer of 404, 405 or 503 means the service
  has no token mode: the GET goes without a token. A GET answered 401 (and not "Please configure Cloud Service
  Agency first") fetches a token again, which must now succeed, and repeats the GET once.
* ``oidc`` — ``auth/provider.py`` ``OidcStsCredentialProvider`` and ``auth/internal.py`` ``OidcStsAccessor``:
  ``POST /v5/agencies/assume-with-oidc`` at the STS endpoint, unsigned, body ``{provider_urn, agency_urn,
  agency_session_name, id_token, duration_seconds}``. The id token file is read again at every renewal (the
  kubelet rotates it).
* ``agency`` — IAM ``POST /v3.0/OS-CREDENTIAL/securitytokens`` with ``methods: ["assume_role"]``, signed with the
  base AK/SK (+ security token) as the SDK signs every IAM call (``IamHelper`` builds the same securitytokens
  request with the ``token`` method).

Every answer is read as ``StsAccessor._process_credential`` reads it: ``credential`` or ``credentials``, then
``access``/``accessKeyId``/``access_key_id``, ``secret``/``secretAccessKey``/``secret_access_key``,
``securitytoken``/``securityToken``/``security_token``, ``expires_at``/``expiration`` (UTC).

The flows hold no I/O (besides reading the id token file): :func:`~.base.run_flow` and :func:`~.base.arun_flow`
send their requests. Obtained secrets are masked by :class:`~.base.RefreshingCredential`; the id token and the
metadata token are masked here as soon as they are read.

One module per concern: :mod:`.settings` (endpoints and checks), :mod:`.answers` (what a source reads),
:mod:`.sources` (the sans-IO sources) and :mod:`.factory` (settings -> source).
"""

from __future__ import annotations

from airflow_provider_modelreg.credentials.huawei.answers import parse_credential
from airflow_provider_modelreg.credentials.huawei.factory import HuaweiSourceSettings, build_huawei_source
from airflow_provider_modelreg.credentials.huawei.settings import (
    AGENCY_NOT_CONFIGURED,
    DEFAULT_METADATA_ENDPOINT,
    DEFAULT_OIDC_SESSION_NAME,
    DEFAULT_STS_ENDPOINT,
    check_agency_urn,
    check_provider_urn,
    check_session_name,
    sts_endpoint_for,
)
from airflow_provider_modelreg.credentials.huawei.sources import AgencySource, MetadataSource, OidcSource

__all__ = [
    "AGENCY_NOT_CONFIGURED",
    "DEFAULT_METADATA_ENDPOINT",
    "DEFAULT_OIDC_SESSION_NAME",
    "DEFAULT_STS_ENDPOINT",
    "AgencySource",
    "HuaweiSourceSettings",
    "MetadataSource",
    "OidcSource",
    "build_huawei_source",
    "check_agency_urn",
    "check_provider_urn",
    "check_session_name",
    "parse_credential",
    "sts_endpoint_for",
]
