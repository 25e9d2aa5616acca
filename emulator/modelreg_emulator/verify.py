"""Request authentication, as the services do it, re-using the package's own signing code.

* Alibaba ``ACS3-HMAC-SHA256``: the signature is recomputed over the headers named in ``SignedHeaders``; the wire
  query is form-encoded (``+`` is a space). ``x-acs-date`` must be signed and within 15 minutes of now; the nonce
  must be signed and not seen within the window.
* Huawei ``SDK-HMAC-SHA256``: recomputed likewise (RFC 3986 query); ``X-Sdk-Date`` signed and within 15 minutes.
* Huawei ``X-Auth-Token``: a token issued by this emulator's ``POST /v3/auth/tokens`` and not expired.

Checks run in this order: credential format, access key, date, signature, nonce (so a forged request cannot burn
a nonce).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from datetime import datetime, timezone

from airflow_provider_modelreg.auth import (
    ACS3_ALGORITHM,
    SDK_ALGORITHM,
    _parse_query,
    acs3_sign,
    sdk_hashed_payload,
    sdk_hmac_sign,
)
from modelreg_emulator.store import Store
from modelreg_emulator.wire import ApiError, Req

__all__ = ["SKEW_SECONDS", "NonceCache", "verify_acs3", "verify_huawei"]

#: Allowed clock skew, both directions.
SKEW_SECONDS = 15 * 60


class NonceCache:
    """Nonces seen within the last ``2 * SKEW_SECONDS`` seconds."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._order: deque[tuple[float, str]] = deque()
        self._lock = threading.Lock()

    def use(self, nonce: str, now: float) -> bool:
        """Record ``nonce``; False when it was already used within the window."""
        with self._lock:
            while self._order and self._order[0][0] < now - 2 * SKEW_SECONDS:
                self._seen.discard(self._order.popleft()[1])
            if nonce in self._seen:
                return False
            self._seen.add(nonce)
            self._order.append((now, nonce))
            return True


def _params(value: str, sep: str) -> dict[str, str]:
    out = {}
    for part in value.split(sep):
        name, eq, val = part.strip().partition("=")
        if eq:
            out[name.strip()] = val.strip()
    return out


def _signed_values(req: Req, signed: str) -> list[tuple[str, str]] | None:
    pairs: list[tuple[str, str]] = []
    for name in signed.split(";"):
        values = req.headers.getlist(name)
        if not name or not values:
            return None
        pairs.extend((name, v) for v in values)
    return pairs


def _within_window(moment: datetime, now: float) -> bool:
    return abs(moment.timestamp() - now) <= SKEW_SECONDS


def verify_acs3(req: Req, store: Store, nonces: NonceCache) -> str:
    """Authenticate a PAI request; return the AccessKey id.

    :raises ApiError: 400 ``SignatureDoesNotMatch`` / ``InvalidAccessKeyId.NotFound`` / ``InvalidTimeStamp.Expired``
        / ``SignatureNonceUsed``.
    """
    header = req.headers.get("authorization", "")
    algorithm, _, rest = header.strip().partition(" ")
    fields = _params(rest, ",")
    key_id, signed, signature = fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")
    if algorithm != ACS3_ALGORITHM or not key_id or not signed or not signature:
        raise ApiError(
            400, "SignatureDoesNotMatch", f"Missing or malformed Authorization header (expected {ACS3_ALGORITHM})."
        )
    secret = store.pai_credentials.get(key_id)
    if secret is None:
        temporary = store.temporary_key("pai", key_id)
        if temporary is None:
            raise ApiError(400, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        token = req.headers.get("x-acs-security-token")
        if not token or not hmac.compare_digest(token, temporary.token):
            raise ApiError(400, "InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch.")
        if temporary.expires_at <= time.time():
            raise ApiError(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")
        secret = temporary.secret
    signed_names = signed.lower().split(";")
    now = time.time()
    raw_date = req.headers.get("x-acs-date")
    try:
        moment = datetime.strptime(raw_date or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise ApiError(400, "InvalidTimeStamp.Expired", "x-acs-date is missing or not yyyy-MM-ddTHH:mm:ssZ.") from None
    if not _within_window(moment, now):
        raise ApiError(400, "InvalidTimeStamp.Expired", f"Specified time stamp or date value is expired: {raw_date}.")
    nonce = req.headers.get("x-acs-signature-nonce")
    body_hash = hashlib.sha256(req.body).hexdigest()
    declared = req.headers.get("x-acs-content-sha256")
    pairs = _signed_values(req, signed.lower())
    if (
        pairs is None
        or "x-acs-date" not in signed_names
        or (nonce is not None and "x-acs-signature-nonce" not in signed_names)
        or (declared is not None and declared != body_hash)
    ):
        raise ApiError(400, "SignatureDoesNotMatch", "Specified signature does not match our calculation.")
    _, _, _, expected = acs3_sign(
        method=req.method,
        canonical_uri=req.path,
        query=_parse_query(req.query, plus_is_space=True),
        headers=pairs,
        hashed_payload=body_hash,
        access_key_secret=secret,
    )
    if not hmac.compare_digest(expected, signature):
        raise ApiError(400, "SignatureDoesNotMatch", "Specified signature does not match our calculation.")
    if not nonce:
        raise ApiError(400, "InvalidParameter", "The x-acs-signature-nonce header is required.")
    if not nonces.use(nonce, now):
        raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    return key_id


_APIG_0301 = "Incorrect IAM authentication information: "


def verify_huawei(req: Req, store: Store) -> str:
    """Authenticate a Fabric request by AK/SK signature or ``X-Auth-Token``; return the AK or the token's user.

    :raises ApiError: 401 ``APIG.0301`` (signature, key, date) or 401 ``APIG.1002`` (token).
    """
    header = req.headers.get("authorization")
    if header is not None:
        algorithm, _, rest = header.strip().partition(" ")
        fields = _params(rest, ",")
        ak, signed, signature = fields.get("Access"), fields.get("SignedHeaders"), fields.get("Signature")
        if algorithm != SDK_ALGORITHM or not ak or not signed or not signature:
            raise ApiError(401, "APIG.0301", _APIG_0301 + "unsupported or malformed Authorization header")
        cred = store.fabric_credentials.get(ak)
        if cred is None:
            temporary = store.temporary_key("fabric", ak)
            if temporary is None:
                raise ApiError(401, "APIG.0301", _APIG_0301 + "AK does not exist")
            token = req.headers.get("x-security-token")
            if not token or not hmac.compare_digest(token, temporary.token):
                raise ApiError(401, "APIG.0301", _APIG_0301 + "security token does not match the AK")
            if temporary.expires_at <= time.time():
                raise ApiError(401, "APIG.0301", _APIG_0301 + "the temporary AK/SK has expired")
            cred = (temporary.secret, None)
        sdk_date = req.headers.get("x-sdk-date", "")
        try:
            moment = datetime.strptime(sdk_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise ApiError(401, "APIG.0301", _APIG_0301 + "X-Sdk-Date is missing or malformed") from None
        if not _within_window(moment, time.time()):
            raise ApiError(401, "APIG.0301", _APIG_0301 + "request expired (X-Sdk-Date out of the 15 minute window)")
        pairs = _signed_values(req, signed.lower())
        if pairs is None or "x-sdk-date" not in signed.lower().split(";"):
            raise ApiError(401, "APIG.0301", _APIG_0301 + "verify aksk signature fail")
        _, _, _, expected = sdk_hmac_sign(
            method=req.method,
            raw_path=req.path,
            query=_parse_query(req.query, plus_is_space=False),
            headers=pairs,
            hashed_payload=sdk_hashed_payload(req.body, req.headers.get("x-sdk-content-sha256")),
            sdk_date=sdk_date,
            secret_key=cred[0],
        )
        if not hmac.compare_digest(expected, signature):
            raise ApiError(401, "APIG.0301", _APIG_0301 + "verify aksk signature fail")
        return ak
    token = req.headers.get("x-auth-token")
    if token:
        with store.lock:
            state = store.tokens.get(token)
        if state is not None and state.expires_at > time.time():
            return state.user
    raise ApiError(401, "APIG.1002", "Incorrect token or token resolution failed")
