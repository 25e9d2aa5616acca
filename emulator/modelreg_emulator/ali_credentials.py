"""Alibaba Cloud credential services of the emulator: STS, ECS instance metadata and a credentials URI.

* STS (RPC style on path ``/``, ``Action`` in the query or a form body), version ``2015-04-01``:

  - ``AssumeRole``: verifies the RPC signature (``SignatureVersion=1.0``, HMAC-SHA1 keyed ``secret + "&"``) with
    a known AccessKey: a seed key (demo ``LTAIemulatorDemoKey01`` / ``emulator-demo-secret-pai``) or a temporary
    key this emulator issued, with its ``SecurityToken``; ``Timestamp`` within 15 minutes, ``SignatureNonce`` not
    reused, ``RoleArn`` shaped ``acs:ram::<digits>:role/<name>``, ``DurationSeconds`` 900-43200.
  - ``AssumeRoleWithOIDC``: ``OIDCProviderArn`` shaped ``acs:ram::<digits>:oidc-provider/<name>`` and an
    ``OIDCToken`` this emulator signed: a JWT (HS256) keyed with :data:`OIDC_SIGNING_KEY`
    (``emulator-demo-oidc-signing-key``), not expired. Mint one with :func:`make_oidc_token`::

        from modelreg_emulator.ali_credentials import make_oidc_token
        print(make_oidc_token())  # valid one hour; write it where ALIBABA_CLOUD_OIDC_TOKEN_FILE points

  Answers: ``{RequestId, AssumedRoleUser{Arn, AssumedRoleId}, Credentials{AccessKeyId, AccessKeySecret,
  SecurityToken, Expiration}}`` (plus ``OIDCTokenInfo`` for OIDC); errors ``{RequestId, HostId, Code, Message,
  Recommend}`` with the service's codes (``SignatureDoesNotMatch``, ``InvalidAccessKeyId.NotFound``,
  ``AuthenticationFail.OIDCToken.Invalid`` ...).

* ECS instance metadata, hardened mode only: ``PUT /latest/api/token`` with
  ``X-aliyun-ecs-metadata-token-ttl-seconds`` (1-21600) gives a token; ``GET
  /latest/meta-data/ram/security-credentials/`` (the role name) and ``.../<role>`` (``{Code: "Success",
  AccessKeyId, AccessKeySecret, SecurityToken, Expiration, LastUpdated}``) need it in
  ``X-aliyun-ecs-metadata-token`` (401 without). The instance's role is ``EmulatorEcsRole`` unless the emulator
  config has an ``ecs_role_name`` attribute.

* Credentials URI: ``GET /ecs-credentials-uri`` answers the metadata JSON shape (the library's URI provider).

Every key issued lives ``credential_lifetime`` seconds (``RegistryEmulator(credential_lifetime=...)``, CLI
``--credential-lifetime``) and the PAI routes accept it with its security token until then.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from airflow_provider_modelreg.auth import _parse_query
from airflow_provider_modelreg.credentials.rpc import rpc_signature
from modelreg_emulator.store import TemporaryKeyState
from modelreg_emulator.verify import SKEW_SECONDS
from modelreg_emulator.wire import Answer, ApiError, Req, dumps_object

if TYPE_CHECKING:
    from modelreg_emulator.app import Registry

__all__ = [
    "CREDENTIALS_URI_PATH",
    "DEFAULT_ECS_ROLE",
    "OIDC_SIGNING_KEY",
    "make_oidc_token",
    "match",
]

OIDC_SIGNING_KEY = "emulator-demo-oidc-signing-key"
OIDC_ISSUER = "https://oidc.emulator.local"
DEFAULT_ECS_ROLE = "EmulatorEcsRole"
CREDENTIALS_URI_PATH = "/ecs-credentials-uri"
_ROLE_LIST_PATH = "/latest/meta-data/ram/security-credentials/"
_TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a path
_STS_HOST = "sts.aliyuncs.com"
_JSON = "application/json;charset=utf-8"
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_ROLE_ARN = re.compile(r"acs:ram::([0-9]{1,32}):role/([A-Za-z0-9.@_-]{1,64})")
_PROVIDER_ARN = re.compile(r"acs:ram::[0-9]{1,32}:oidc-provider/[A-Za-z0-9.@_-]{1,128}")
_SESSION = re.compile(r"[A-Za-z0-9.@_-]{2,64}")

Handler = Callable[["Registry", Req], Answer]


# ---------------------------------------------------------------------------------------------------- OIDC JWT


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_oidc_token(
    subject: str = "system:serviceaccount:airflow:worker", lifetime: float = 3600, *, now: float | None = None
) -> str:
    """An OIDC token (JWT, HS256 with :data:`OIDC_SIGNING_KEY`) the emulator's ``AssumeRoleWithOIDC`` accepts.

    :param subject: the ``sub`` claim (a service account, as RRSA's tokens carry).
    :param lifetime: seconds until ``exp``.
    :param now: issue time (epoch seconds; default now).
    """
    issued = time.time() if now is None else now
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {
        "iss": OIDC_ISSUER,
        "sub": subject,
        "aud": _STS_HOST,
        "iat": int(issued),
        "exp": int(issued + lifetime),
        "jti": uuid.uuid4().hex,
    }
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(OIDC_SIGNING_KEY.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(mac)}"


def _oidc_claims(token: str) -> dict[str, Any]:
    """The claims of an emulator-signed token, or the STS error for it."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ApiError(
            401,
            "AuthenticationFail.OIDCToken.Invalid",
            "The number of Jwt field should be divided into 3 parts with '.' .",
        )
    try:
        header = json.loads(_unb64url(parts[0]))
        claims = json.loads(_unb64url(parts[1]))
        signature = _unb64url(parts[2])
    except (ValueError, binascii.Error):
        raise ApiError(
            401, "AuthenticationFail.OIDCToken.Invalid", "Cannot decode base64 encoded response(format invalided)."
        ) from None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise ApiError(
            401, "AuthenticationFail.OIDCToken.Invalid", "The Jwt content is invalid that cannot be recognized."
        )
    expected = hmac.new(OIDC_SIGNING_KEY.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise ApiError(
            401, "AuthenticationFail.OIDCToken.InvalidSignature", "OIDC token validate failed: invalid signature."
        )
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp <= time.time():
        raise ApiError(401, "AuthenticationFail.OIDCToken.Expired", "This JsonWebToken is expired.")
    if claims.get("aud") != _STS_HOST:
        raise ApiError(401, "AuthenticationFail.OIDCToken.AudienceNotMatch", "Invalid audience.")
    return claims


# ------------------------------------------------------------------------------------------------------ state


class _State:
    """Metadata session tokens of one emulator (token -> expiry, epoch seconds)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.metadata_tokens: dict[str, float] = {}


def _state(registry: Registry) -> _State:
    return registry.service_state("alibaba", _State)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime(_TIME)


def _credentials(key: TemporaryKeyState) -> dict[str, str]:
    return {
        "AccessKeyId": key.key_id,
        "AccessKeySecret": key.secret,
        "SecurityToken": key.token,
        "Expiration": _iso(key.expires_at),
    }


# ------------------------------------------------------------------------------------------------------- STS


def _sts_ok(payload: dict[str, Any]) -> Answer:
    request_id = str(uuid.uuid4()).upper()
    body = dumps_object({"RequestId": request_id, **payload}).encode()
    return Answer(200, body, {"content-type": _JSON, "x-acs-request-id": request_id})


def _sts_error(err: ApiError) -> Answer:
    request_id = str(uuid.uuid4()).upper()
    body = {
        "RequestId": request_id,
        "HostId": _STS_HOST,
        "Code": err.code,
        "Message": err.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product=Sts&requestId={request_id}",
    }
    return Answer(err.status, dumps_object(body).encode(), {"content-type": _JSON, "x-acs-request-id": request_id})


def _rpc_params(req: Req) -> dict[str, str]:
    """Query parameters, plus a form body's (POST), as STS reads them (``+`` is a space)."""
    params = dict(_parse_query(req.query, plus_is_space=True))
    content_type = req.headers.get("content-type", "")
    if req.method == "POST" and req.body and "application/x-www-form-urlencoded" in content_type:
        params.update(_parse_query(req.body.decode("utf-8", "replace"), plus_is_space=True))
    return params


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise ApiError(
            400,
            f"MissingParameter.{name}" if name != "OIDCToken" else "AuthenticationFail.OIDCToken.Invalid",
            f'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
        )
    return value


def _check_common(params: dict[str, str]) -> tuple[str, str, int]:
    """(role ARN, session name, duration) after the checks both actions share."""
    if params.get("Version") != "2015-04-01":
        raise ApiError(400, "InvalidVersion", "Specified parameter Version is not valid.")
    role_arn = _required(params, "RoleArn")
    if _ROLE_ARN.fullmatch(role_arn) is None:
        raise ApiError(400, "InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed.")
    session = _required(params, "RoleSessionName")
    if _SESSION.fullmatch(session) is None:
        raise ApiError(400, "InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed.")
    raw = params.get("DurationSeconds", "3600")
    if not raw.isdigit() or not 900 <= int(raw) <= 43200:
        raise ApiError(400, "InvalidParameter.DurationSeconds", "The Min/Max value of DurationSeconds is 15min/12hr.")
    return role_arn, session, int(raw)


def _signing_secret(registry: Registry, params: dict[str, str]) -> str:
    """The secret of the request's AccessKeyId (a seed key, or an issued key with its matching token)."""
    key_id = _required(params, "AccessKeyId")
    store = registry.store
    secret = store.pai_credentials.get(key_id)
    if secret is not None:
        return secret
    temporary = store.temporary_key("pai", key_id)
    if temporary is None:
        raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    token = params.get("SecurityToken")
    if not token or not hmac.compare_digest(token, temporary.token):
        raise ApiError(400, "InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch.")
    if temporary.expires_at <= time.time():
        raise ApiError(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")
    return temporary.secret


def _verify_rpc(registry: Registry, req: Req, params: dict[str, str]) -> None:
    """The RPC signature checks, in the service's order (key, time, signature, then the nonce is spent)."""
    secret = _signing_secret(registry, params)
    if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
        raise ApiError(400, "InvalidSignatureMethod", "Specified signature method or version is not supported.")
    stamp = _required(params, "Timestamp")
    try:
        moment = datetime.strptime(stamp, _TIME).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise ApiError(
            400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
        ) from None
    now = time.time()
    if abs(moment - now) > SKEW_SECONDS:
        raise ApiError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
    signature = _required(params, "Signature")
    unsigned = {k: v for k, v in params.items() if k != "Signature"}
    if not hmac.compare_digest(rpc_signature(req.method, unsigned, secret), signature):
        raise ApiError(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
    if not registry.nonces.use(_required(params, "SignatureNonce"), now):
        raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")


def _assumed(role_arn: str, session: str) -> dict[str, str]:
    found = _ROLE_ARN.fullmatch(role_arn)
    assert found is not None
    role_id = str(int(hashlib.sha256(role_arn.encode()).hexdigest()[:15], 16))
    return {"Arn": f"{role_arn}/{session}", "AssumedRoleId": f"{role_id}:{session}"}


def _assume_role(registry: Registry, req: Req) -> Answer:
    params = _rpc_params(req)
    try:
        _verify_rpc(registry, req, params)
        role_arn, session, _ = _check_common(params)
    except ApiError as err:
        return _sts_error(err)
    key = registry.store.issue_temporary_key("pai", registry.config.credential_lifetime, issuer="sts.AssumeRole")
    return _sts_ok({"AssumedRoleUser": _assumed(role_arn, session), "Credentials": _credentials(key)})


def _assume_role_with_oidc(registry: Registry, req: Req) -> Answer:
    params = _rpc_params(req)
    try:
        role_arn, session, _ = _check_common(params)
        provider = _required(params, "OIDCProviderArn")
        if _PROVIDER_ARN.fullmatch(provider) is None:
            raise ApiError(400, "InvalidParameter.OIDCProviderArn", "The parameter OIDCProviderArn is wrongly formed.")
        claims = _oidc_claims(_required(params, "OIDCToken"))
    except ApiError as err:
        return _sts_error(err)
    key = registry.store.issue_temporary_key(
        "pai", registry.config.credential_lifetime, issuer="sts.AssumeRoleWithOIDC"
    )
    info = {
        "Issuer": claims.get("iss"),
        "Subject": claims.get("sub"),
        "ClientIds": claims.get("aud"),
        "IssuanceTime": _iso(float(claims.get("iat", 0))),
        "ExpirationTime": _iso(float(claims["exp"])),
    }
    return _sts_ok(
        {"AssumedRoleUser": _assumed(role_arn, session), "Credentials": _credentials(key), "OIDCTokenInfo": info}
    )


def _unknown_action(registry: Registry, req: Req) -> Answer:
    action = _rpc_params(req).get("Action", "")
    return _sts_error(ApiError(400, "InvalidAction.NotFound", f"Specified api is not found: {action:.64}"))


_STS_ACTIONS: dict[str, tuple[str, Handler]] = {
    "AssumeRole": ("sts.AssumeRole", _assume_role),
    "AssumeRoleWithOIDC": ("sts.AssumeRoleWithOIDC", _assume_role_with_oidc),
}


# ------------------------------------------------------------------------------------------- instance metadata


def _text(status: int, text: str) -> Answer:
    return Answer(status, text.encode(), {"content-type": "text/plain"})


def _metadata_token(registry: Registry, req: Req) -> Answer:
    ttl = req.headers.get("x-aliyun-ecs-metadata-token-ttl-seconds", "")
    if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
        return _text(400, "X-aliyun-ecs-metadata-token-ttl-seconds must be an integer from 1 to 21600")
    token = secrets.token_urlsafe(32)
    state = _state(registry)
    with state.lock:
        state.metadata_tokens[token] = time.time() + int(ttl)
    return _text(200, token)


def _metadata_session(registry: Registry, req: Req) -> Answer | None:
    """None when the request carries a live metadata token, else the 401 answer (hardened mode)."""
    token = req.headers.get("x-aliyun-ecs-metadata-token")
    state = _state(registry)
    with state.lock:
        expiry = state.metadata_tokens.get(token or "")
    if expiry is None or expiry <= time.time():
        return _text(401, "Unauthorized: a metadata token (PUT /latest/api/token) is required")
    return None


def _role_name(registry: Registry) -> str:
    return str(getattr(registry.config, "ecs_role_name", None) or DEFAULT_ECS_ROLE)


def _role_list(registry: Registry, req: Req) -> Answer:
    return _metadata_session(registry, req) or _text(200, _role_name(registry))


def _role_credentials(registry: Registry, req: Req) -> Answer:
    refused = _metadata_session(registry, req)
    if refused is not None:
        return refused
    if unquote(req.path[len(_ROLE_LIST_PATH) :]) != _role_name(registry):
        return _text(404, "Not Found")
    return _metadata_credentials(registry, "ecs.metadata")


def _metadata_credentials(registry: Registry, issuer: str) -> Answer:
    key = registry.store.issue_temporary_key("pai", registry.config.credential_lifetime, issuer=issuer)
    body = {"Code": "Success", **_credentials(key), "LastUpdated": _iso(key.issued_at)}
    return Answer(200, json.dumps(body).encode(), {"content-type": "text/plain"})


def _uri_credentials(registry: Registry, req: Req) -> Answer:
    return _metadata_credentials(registry, "credentials_uri")


def _metadata_unknown(registry: Registry, req: Req) -> Answer:
    return _text(404, "Not Found")


# ------------------------------------------------------------------------------------------------------ routing


def match(method: str, path: str, req: Req) -> tuple[str, Handler] | None:
    """``(route, handler)`` when the request is for one of these services, else None."""
    if path == "/":
        action = _rpc_params(req).get("Action")
        if action is None:
            return None
        return _STS_ACTIONS.get(action, ("sts.Unknown", _unknown_action))
    if path.startswith("/latest/"):
        if path == _TOKEN_PATH and method == "PUT":
            return "ecs.MetadataToken", _metadata_token
        if method == "GET" and path == _ROLE_LIST_PATH:
            return "ecs.RoleList", _role_list
        if method == "GET" and path.startswith(_ROLE_LIST_PATH):
            return "ecs.RoleCredentials", _role_credentials
        return "ecs.Unknown", _metadata_unknown
    if path == CREDENTIALS_URI_PATH and method == "GET":
        return "uri.Credentials", _uri_credentials
    return None
