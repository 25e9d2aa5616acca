"""Huawei Cloud credential services of the emulator: ECS/CCE instance metadata, IAM agency security tokens, STS OIDC.

Every key issued is a temporary Fabric key (:meth:`~.store.Store.issue_temporary_key`) that the Fabric routes
accept, with its ``X-Security-Token``, until it expires. It lives ``min(duration_seconds asked,
credential_lifetime)`` seconds (``--credential-lifetime``; the metadata key lives ``credential_lifetime``).

Routes (none collides with Fabric ``/v1/...``, IAM ``/v3/auth/tokens``, Alibaba STS ``/`` or Alibaba metadata
``/latest/...``):

* ``PUT /meta-data/latest/api/token`` (``hw.metadata.Token``) — needs ``X-Metadata-Token-Ttl-Seconds`` 1-21600
  (else 400); answers the token as text. With :attr:`HwCredentialSettings.metadata_token_mode` ``unsupported`` it
  answers 404 (an older metadata service).
* ``GET /openstack/latest/securitykey`` (``hw.metadata.SecurityKey``) — ``{"credential": {"access", "secret",
  "securitytoken", "expires_at"}}``. An unknown or expired ``X-Metadata-Token`` is 401; no token is 401 in mode
  ``required`` and accepted in modes ``optional`` (the default, as ECS today) and ``unsupported``. Without an agency
  (:attr:`HwCredentialSettings.metadata_agency` False) it is 401 with "Please configure Cloud Service Agency first",
  the text ``MetadataAccessor`` looks for.
* ``POST /v3.0/OS-CREDENTIAL/securitytokens`` (``hw.iam.AssumeRole``) — signed with a Fabric AK/SK of the seed (or
  a temporary key with its security token; checked by :func:`~.verify.verify_huawei`: 401 ``APIG.0301``); body
  ``auth.identity.methods == ["assume_role"]`` and ``assume_role`` with ``agency_name``, ``domain_name`` or
  ``domain_id``, optional ``duration_seconds`` 900-86400. An agency not in :attr:`HwCredentialSettings.agencies` is
  403. Answers 201 ``{"credential": {...}}`` (``expires_at`` with microseconds, as IAM writes it). Errors use IAM's
  nested body ``{"error": {"code", "message", "title"}}``.
* ``POST /v5/agencies/assume-with-oidc`` (``hw.sts.AssumeAgencyWithOIDC``) — unsigned; body ``provider_urn``
  (``iam::<account>:identity-provider:<name>``), ``agency_urn`` (``iam::<account>:agency:<name>``),
  ``agency_session_name``, ``id_token``, optional ``duration_seconds`` 900-43200. A malformed field is 400
  ``STS.0001``; an unknown provider 404 ``STS.0002``; an id token not in :attr:`HwCredentialSettings.id_tokens` 401
  ``STS.0003`` (the emulator does not verify JWTs: it accepts the tokens it was told about). Answers 200
  ``{"credentials": {"access_key_id", "secret_access_key", "security_token", "expiration"}, "assumed_agency":
  {...}}``. Error bodies ``{"error_code", "error_msg", "request_id"}`` (IAM v5 style). The codes are the
  emulator's own: the service's exact codes are not documented in what we read.

Settings live per emulator (:func:`settings`, in-process; the demo defaults below serve ``modelreg-emulator``).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from modelreg_emulator.store import TemporaryKeyState, iso_ms
from modelreg_emulator.verify import verify_huawei
from modelreg_emulator.wire import Answer, ApiError, Req, hw_error, hw_ok

if TYPE_CHECKING:
    from modelreg_emulator.app import Registry

__all__ = [
    "DEMO_AGENCY",
    "DEMO_AGENCY_URN",
    "DEMO_CALLER_DOMAIN_ID",
    "DEMO_CALLER_DOMAIN_NAME",
    "DEMO_DOMAIN_ID",
    "DEMO_ID_TOKEN",
    "DEMO_PROVIDER_URN",
    "HwCredentialSettings",
    "match",
    "settings",
]

#: demo OIDC setup (fake): the id token the emulator's STS accepts, and the URNs it knows
DEMO_ID_TOKEN = "emulator-demo-oidc-id-token"  # noqa: S105 - a documented fake
DEMO_PROVIDER_URN = "iam::emulatordemoaccount:identity-provider:emulator-demo-oidc"
DEMO_AGENCY_URN = "iam::emulatordemoaccount:agency:emulator-demo-agency"
#: demo agency (fake): ``agency_domain_name`` / ``agency_domain_id`` and ``agency_name``
DEMO_DOMAIN_NAME = "emulator-demo-domain"
DEMO_DOMAIN_ID = "emulatordemodomainid0001"
DEMO_AGENCY = "emulator-demo-agency"
#: the account every seed key belongs to (``GET /v3/auth/domains``; ``X-Domain-Id`` of AK/SK-signed IAM calls)
DEMO_CALLER_DOMAIN_ID = "emulatordemocalleraccount01"
DEMO_CALLER_DOMAIN_NAME = "emulator-demo-caller"

METADATA_TOKEN_MODES = ("optional", "required", "unsupported")
_REQUIRED, _UNSUPPORTED = METADATA_TOKEN_MODES[1:]
_AGENCY_NOT_CONFIGURED = "Please configure Cloud Service Agency first"
_PROVIDER_URN = re.compile(r"iam::[A-Za-z0-9]{1,64}:identity-provider:[A-Za-z0-9_.@+=,-]{1,128}")
_AGENCY_URN = re.compile(r"iam::[A-Za-z0-9]{1,64}:agency:[A-Za-z0-9_.@+=,-]{1,128}")
_SESSION_NAME = re.compile(r"[A-Za-z0-9_.@+=,-]{2,64}")


@dataclass
class HwCredentialSettings:
    """What the emulator's Huawei credential services accept (mutable while the emulator runs).

    :param metadata_token_mode: ``optional`` (token used when sent), ``required`` (no token: 401) or
        ``unsupported`` (the token route answers 404).
    :param metadata_agency: False: the node has no agency (securitykey answers 401 "Please configure ...").
    :param id_tokens: OIDC id tokens the STS accepts.
    :param providers: OIDC provider URNs the STS knows.
    :param agencies: ``(domain name or id, agency name)`` pairs IAM lets the seed's keys assume.
    """

    metadata_token_mode: str = METADATA_TOKEN_MODES[0]
    metadata_agency: bool = True
    id_tokens: set[str] = field(default_factory=lambda: {DEMO_ID_TOKEN})
    providers: set[str] = field(default_factory=lambda: {DEMO_PROVIDER_URN})
    agencies: set[tuple[str, str]] = field(
        default_factory=lambda: {(DEMO_DOMAIN_NAME, DEMO_AGENCY), (DEMO_DOMAIN_ID, DEMO_AGENCY)}
    )
    #: metadata tokens issued: token -> expiry (epoch seconds)
    metadata_tokens: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def settings(registry: Registry) -> HwCredentialSettings:
    """The settings of one emulator (``RegistryEmulator.registry``), created with the demo defaults on first use."""
    return registry.service_state("huawei", HwCredentialSettings)


# ------------------------------------------------------------------------------------------------ helpers


def _iam_error(status: int, message: str) -> Answer:
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
    return hw_ok({"error": {"code": status, "message": message, "title": titles.get(status, "Error")}}, status=status)


def _sts_error(status: int, code: str, message: str) -> Answer:
    answer = hw_error(ApiError(status, code, message))
    body = json.loads(answer.body)
    body["request_id"] = answer.headers["X-Request-Id"]
    answer.body = json.dumps(body).encode()
    return answer


def _json_body(req: Req) -> dict[str, Any] | None:
    try:
        body = json.loads(req.body or b"null")
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _expiry(state: TemporaryKeyState, *, micro: bool) -> str:
    moment = datetime.fromtimestamp(state.expires_at, timezone.utc)
    # IAM and ECS write microseconds (2020-01-08T02:56:19.587000Z), STS v5 milliseconds
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if micro else iso_ms(moment)


def _iam_credential(state: TemporaryKeyState) -> dict[str, Any]:
    return {
        "credential": {
            "access": state.key_id,
            "secret": state.secret,
            "securitytoken": state.token,
            "expires_at": _expiry(state, micro=True),
        }
    }


def _duration(value: Any, low: int, high: int) -> int | None:
    """The asked lifetime, None when absent; -1 when out of range or not an integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return -1
    return value


# ------------------------------------------------------------------------------------------------ metadata


def metadata_token(registry: Registry, req: Req) -> Answer:
    """``PUT /meta-data/latest/api/token``."""
    conf = settings(registry)
    if conf.metadata_token_mode == _UNSUPPORTED:
        return Answer(404, b"404 Not Found", {"content-type": "text/plain"})
    raw = req.headers.get("x-metadata-token-ttl-seconds", "")
    if not raw.isdigit() or not 1 <= int(raw) <= 21600:
        return Answer(400, b"X-Metadata-Token-Ttl-Seconds must be 1-21600", {"content-type": "text/plain"})
    token = secrets.token_urlsafe(32)
    with conf.lock:
        conf.metadata_tokens[token] = time.time() + int(raw)
    return Answer(200, token.encode(), {"content-type": "text/plain"})


def metadata_securitykey(registry: Registry, req: Req) -> Answer:
    """``GET /openstack/latest/securitykey``."""
    conf = settings(registry)
    token = req.headers.get("x-metadata-token")
    if token is not None:
        with conf.lock:
            expires = conf.metadata_tokens.get(token)
        if expires is None or expires <= time.time():
            return Answer(401, b"401 Unauthorized: invalid or expired metadata token", {"content-type": "text/plain"})
    elif conf.metadata_token_mode == _REQUIRED:
        return Answer(401, b"401 Unauthorized: X-Metadata-Token is required", {"content-type": "text/plain"})
    if not conf.metadata_agency:
        return Answer(401, _AGENCY_NOT_CONFIGURED.encode(), {"content-type": "text/plain"})
    state = registry.store.issue_temporary_key("fabric", registry.config.credential_lifetime, issuer="ecs.metadata")
    return hw_ok(_iam_credential(state))


# ------------------------------------------------------------------------------------------------ IAM agency


def _assume_role_fields(body: dict[str, Any] | None) -> tuple[str, str, int] | str:
    """(domain, agency, duration) of a valid assume_role body, else the problem."""
    identity = ((body or {}).get("auth") or {}).get("identity")
    if not isinstance(identity, dict) or identity.get("methods") != ["assume_role"]:
        return 'auth.identity.methods must be ["assume_role"]'
    role = identity.get("assume_role")
    if not isinstance(role, dict):
        return "auth.identity.assume_role is required"
    agency = role.get("agency_name")
    domain = role.get("domain_id") or role.get("domain_name")
    if not isinstance(agency, str) or not agency or not isinstance(domain, str) or not domain:
        return "assume_role needs agency_name and domain_name or domain_id"
    duration = _duration(role.get("duration_seconds"), 900, 86400)
    if duration == -1:
        return "duration_seconds must be an integer from 900 to 86400"
    return domain, agency, duration or 900


def auth_domains(registry: Registry, req: Req) -> Answer:
    """``GET /v3/auth/domains``: the accounts the caller may see (with AK/SK: its own), as keystone answers it."""
    try:
        verify_huawei(req, registry.store)
    except ApiError as err:
        return hw_error(err)
    domain = {"id": DEMO_CALLER_DOMAIN_ID, "name": DEMO_CALLER_DOMAIN_NAME, "enabled": True}
    return hw_ok({"domains": [domain], "links": {"self": "https://iam.myhuaweicloud.com/v3/auth/domains"}})


def assume_role(registry: Registry, req: Req) -> Answer:
    """``POST /v3.0/OS-CREDENTIAL/securitytokens`` with ``methods: ["assume_role"]``.

    Signed with AK/SK, IAM (a global service) needs the caller's account in ``X-Domain-Id``, as the SDK's
    ``GlobalCredentials`` sends it.
    """
    try:
        verify_huawei(req, registry.store)
    except ApiError as err:
        return hw_error(err)
    if req.headers.get("authorization") is not None:
        caller = req.headers.get("x-domain-id")
        if caller is None:
            return _iam_error(400, "X-Domain-Id is required for an AK/SK-signed request to IAM (a global service)")
        if caller != DEMO_CALLER_DOMAIN_ID:
            return _iam_error(401, "the AK does not belong to the account in X-Domain-Id")
    fields = _assume_role_fields(_json_body(req))
    if isinstance(fields, str):
        return _iam_error(400, fields)
    domain, agency, duration = fields
    if (domain, agency) not in settings(registry).agencies:
        return _iam_error(403, f"agency {agency} of domain {domain} does not exist or may not be assumed")
    lifetime = min(float(duration), registry.config.credential_lifetime)
    state = registry.store.issue_temporary_key("fabric", lifetime, issuer="iam.assume_role")
    return hw_ok(_iam_credential(state), status=201)


# ------------------------------------------------------------------------------------------------ STS OIDC


def _oidc_problem(body: dict[str, Any] | None) -> str | None:
    if body is None:
        return "the body must be a JSON object"
    checks = (
        ("provider_urn", _PROVIDER_URN),
        ("agency_urn", _AGENCY_URN),
        ("agency_session_name", _SESSION_NAME),
    )
    for name, pattern in checks:
        value = body.get(name)
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            return f"{name} is missing or malformed"
    token = body.get("id_token")
    if not isinstance(token, str) or not 4 <= len(token) <= 20000:
        return "id_token must be 4-20000 characters"
    if _duration(body.get("duration_seconds"), 900, 43200) == -1:
        return "duration_seconds must be an integer from 900 to 43200"
    return None


def assume_with_oidc(registry: Registry, req: Req) -> Answer:
    """``POST /v5/agencies/assume-with-oidc``."""
    body = _json_body(req)
    problem = _oidc_problem(body)
    if problem is not None:
        return _sts_error(400, "STS.0001", problem)
    assert body is not None
    conf = settings(registry)
    if body["provider_urn"] not in conf.providers:
        return _sts_error(404, "STS.0002", "the identity provider does not exist")
    if body["id_token"] not in conf.id_tokens:
        return _sts_error(401, "STS.0003", "the id token is invalid or expired")
    duration = _duration(body.get("duration_seconds"), 900, 43200) or 3600
    lifetime = min(float(duration), registry.config.credential_lifetime)
    state = registry.store.issue_temporary_key("fabric", lifetime, issuer="sts.assume_with_oidc")
    account = body["agency_urn"].split(":")[2]
    agency = body["agency_urn"].rsplit(":", 1)[1]
    payload = {
        "credentials": {
            "access_key_id": state.key_id,
            "secret_access_key": state.secret,
            "security_token": state.token,
            "expiration": _expiry(state, micro=False),
        },
        "assumed_agency": {
            "agency_session_id": secrets.token_hex(16),
            "agency_session_urn": f"sts::{account}:assumed-agency:{agency}/{body['agency_session_name']}",
        },
    }
    return hw_ok(payload)


# ------------------------------------------------------------------------------------------------ dispatch

Handler = Callable[["Registry", Req], Answer]

_ROUTES: dict[tuple[str, str], tuple[str, Handler]] = {
    ("PUT", "/meta-data/latest/api/token"): ("hw.metadata.Token", metadata_token),
    ("GET", "/openstack/latest/securitykey"): ("hw.metadata.SecurityKey", metadata_securitykey),
    ("POST", "/v3.0/OS-CREDENTIAL/securitytokens"): ("hw.iam.AssumeRole", assume_role),
    ("GET", "/v3/auth/domains"): ("hw.iam.ListAuthDomains", auth_domains),
    ("POST", "/v5/agencies/assume-with-oidc"): ("hw.sts.AssumeAgencyWithOIDC", assume_with_oidc),
}


def match(method: str, path: str, req: Req) -> tuple[str, Handler] | None:
    """``(route, handler)`` when the request is for one of these services, else None."""
    return _ROUTES.get((method, path))
