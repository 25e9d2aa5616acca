"""Request signing for both registries, as :class:`httpx.Auth` subclasses.

* :class:`AcsV3Auth` — Alibaba Cloud ``ACS3-HMAC-SHA256`` (the official Tea SDK's default signature).
* :class:`HuaweiAkSkAuth` — Huawei Cloud ``SDK-HMAC-SHA256`` (the official ``huaweicloudsdkcore`` signer).

Both sign every header present on the request except the transport headers in :data:`UNSIGNED_HEADERS`, so a
request that carries exactly the headers the official SDK sends gets a byte-identical ``Authorization`` header
(proven against the SDK-produced vectors in ``tests/data/vectors.json`` and differentially against the SDKs in
the tests).

The canonicalisation functions are module level so that the local emulator verifies signatures with the very
same code it is meant to check. Signing happens inside ``auth_flow``, i.e. once per attempt: a retried request is
re-signed with a fresh date and nonce.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import uuid
from collections.abc import Callable, Generator, Iterable
from datetime import datetime, timezone
from urllib.parse import quote, unquote, unquote_plus

import httpx

__all__ = [
    "ACS3_ALGORITHM",
    "EMPTY_SHA256",
    "SDK_ALGORITHM",
    "UNSIGNED_HEADERS",
    "AcsV3Auth",
    "AlibabaKeyAuth",
    "HuaweiAkSkAuth",
    "acs3_sign",
    "percent_encode",
    "sdk_hmac_sign",
]

ACS3_ALGORITHM = "ACS3-HMAC-SHA256"
SDK_ALGORITHM = "SDK-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: Headers added by the HTTP stack that the official SDKs do not sign either.
UNSIGNED_HEADERS = frozenset({"connection", "accept-encoding", "content-length", "authorization"})

Clock = Callable[[], datetime]
Nonce = Callable[[], str]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _uuid_nonce() -> str:
    return uuid.uuid4().hex


def percent_encode(value: str) -> str:
    """RFC 3986 encoding over UTF-8: unreserved ``A-Z a-z 0-9 - . _ ~`` literal, all else ``%XX`` upper-case."""
    return quote(value, safe="-_.~")


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac_hex(key: str, message: str) -> str:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def _trim_header_values(request: httpx.Request) -> httpx.Headers:
    """Strip leading/trailing whitespace from every header value in place and return the request's headers.

    The signature covers the trimmed values (both SDKs strip them), and the Huawei SDK also *sends* them trimmed.
    httpx passes values to h11 unchanged, and h11 refuses to send a value with leading or trailing whitespace, so
    without this a padded value would be signed but could never go out. Trimming makes the wire value the signed one.
    """
    headers = request.headers
    encoding = headers.encoding
    raw = headers.raw
    trimmed = [(name, value.decode(encoding).strip().encode(encoding)) for name, value in raw]
    if trimmed != raw:
        request.headers = httpx.Headers(trimmed, encoding=encoding)
    return request.headers


def _split_target(raw_path: bytes) -> tuple[str, str]:
    path, _, query = raw_path.decode("ascii").partition("?")
    return path, query


def _parse_query(query: str, *, plus_is_space: bool) -> list[tuple[str, str]]:
    """Decode a wire query into (name, value) pairs; blank values are kept (``name=`` is signed)."""
    decode = unquote_plus if plus_is_space else unquote
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((decode(name), decode(value)))
    return pairs


def _canonical_header_block(headers: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """Return (canonical headers block, signed header list) for headers that are to be signed.

    Several values under one name are sorted and joined with ``,`` (what the Alibaba SDK does; the HTTP layer
    would send them separately, so our hooks never produce them).
    """
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower().strip(), []).append(value.strip())
    names = sorted(grouped)
    block = "".join(f"{n}:{','.join(sorted(grouped[n]))}\n" for n in names)
    return block, ";".join(names)


# ---------------------------------------------------------------------------------------------------------------
# Alibaba ACS3-HMAC-SHA256
# ---------------------------------------------------------------------------------------------------------------


def acs3_canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Sort by name (code point), RFC 3986-encode the values (``%20`` for space), keep ``name=`` for empty values."""
    return "&".join(f"{name}={percent_encode(value)}" for name, value in sorted(pairs, key=lambda p: p[0]))


def acs3_sign(
    *,
    method: str,
    canonical_uri: str,
    query: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    hashed_payload: str,
    access_key_secret: str,
) -> tuple[str, str, str, str]:
    """Return ``(canonical_request, string_to_sign, signed_headers, signature)`` for headers to be signed."""
    block, signed = _canonical_header_block(headers)
    canonical = "\n".join(
        [method.upper(), canonical_uri or "/", acs3_canonical_query(query), block, signed, hashed_payload]
    )
    string_to_sign = f"{ACS3_ALGORITHM}\n{_sha256_hex(canonical.encode('utf-8'))}"
    return canonical, string_to_sign, signed, _hmac_hex(access_key_secret, string_to_sign)


class _KeySigner(httpx.Auth, abc.ABC):
    """What an access-key signer of either vendor holds: the key's secret (the HMAC key, never shown), its temporary
    token and the clock of each signature. :meth:`sign` signs a request in place; ``auth_flow`` signs each attempt.
    """

    def __init__(self, secret: str, security_token: str | None, clock: Clock | None) -> None:
        self._secret = secret
        self._security_token = security_token
        self._clock = clock or _utcnow

    @abc.abstractmethod
    def sign(self, request: httpx.Request) -> None:
        """Sign ``request`` in place (its headers, or its query for the STS RPC signature)."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request


class AlibabaKeyAuth(_KeySigner):
    """What an Alibaba Cloud AccessKey signer holds: the key, its STS token, and the clock and nonce of each
    signature (:class:`AcsV3Auth` here; the STS calls' ``RpcSignatureAuth``).

    :param access_key_id: AccessKey ID (or the temporary STS AccessKey ID).
    :param access_key_secret: AccessKey secret, the HMAC key. Never logged or shown in ``repr``.
    :param security_token: STS security token.
    :param clock: zero-argument callable returning an aware UTC datetime (default: now).
    :param nonce: zero-argument callable returning a unique nonce string (default: :meth:`new_nonce`).
    """

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        *,
        security_token: str | None = None,
        clock: Clock | None = None,
        nonce: Nonce | None = None,
    ) -> None:
        super().__init__(access_key_secret, security_token, clock)
        self.access_key_id = access_key_id
        self._nonce = nonce or self.new_nonce

    @staticmethod
    def new_nonce() -> str:
        """The default nonce: a random UUID hex."""
        return _uuid_nonce()


class AcsV3Auth(AlibabaKeyAuth):
    """Alibaba Cloud ``ACS3-HMAC-SHA256`` request signing.

    :param access_key_id: AccessKey ID (or the temporary STS AccessKey ID).
    :param access_key_secret: AccessKey secret, the HMAC key. Never logged or shown in ``repr``.
    :param security_token: STS security token; adds ``x-acs-accesskey-id`` and ``x-acs-security-token``.
    :param clock: zero-argument callable returning an aware UTC datetime (default: now).
    :param nonce: zero-argument callable returning a unique nonce string (default: a random UUID hex).
    """

    requires_request_body = True

    def __repr__(self) -> str:
        return f"AcsV3Auth(access_key_id={self.access_key_id!r}, sts={self._security_token is not None})"

    def sign(self, request: httpx.Request) -> None:
        """Add the date, nonce, content hash, STS headers and ``Authorization`` to ``request`` in place."""
        headers = _trim_header_values(request)
        hashed_payload = _sha256_hex(request.content)
        headers["x-acs-date"] = self._clock().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers["x-acs-signature-nonce"] = self._nonce()
        headers["x-acs-content-sha256"] = hashed_payload
        if self._security_token is not None:
            headers["x-acs-accesskey-id"] = self.access_key_id
            headers["x-acs-security-token"] = self._security_token
        path, query = _split_target(request.url.raw_path)
        _, _, signed, signature = acs3_sign(
            method=request.method,
            canonical_uri=path,
            # The wire query is form-encoded (``+`` for space); the signature covers RFC 3986 ``%20``.
            query=_parse_query(query, plus_is_space=True),
            headers=[(k, v) for k, v in headers.multi_items() if k.lower() not in UNSIGNED_HEADERS],
            hashed_payload=hashed_payload,
            access_key_secret=self._secret,
        )
        headers["Authorization"] = (
            f"{ACS3_ALGORITHM} Credential={self.access_key_id},SignedHeaders={signed},Signature={signature}"
        )


# ---------------------------------------------------------------------------------------------------------------
# Huawei SDK-HMAC-SHA256
# ---------------------------------------------------------------------------------------------------------------


def sdk_canonical_uri(raw_path: str) -> str:
    """Decode the wire path, re-encode each segment (RFC 3986), and always end with ``/``."""
    segments = [percent_encode(s) for s in unquote(raw_path).split("/")]
    uri = "/".join(segments)
    return uri if uri.endswith("/") else uri + "/"


def sdk_canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Sort pairs by name, then raw value; RFC 3986-encode both sides."""
    return "&".join(f"{percent_encode(n)}={percent_encode(v)}" for n, v in sorted(pairs))


def sdk_hmac_sign(
    *,
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    hashed_payload: str,
    sdk_date: str,
    secret_key: str,
) -> tuple[str, str, str, str]:
    """Return ``(canonical_request, string_to_sign, signed_headers, signature)`` for headers to be signed."""
    block, signed = _canonical_header_block(headers)
    canonical = "\n".join(
        [
            method.upper(),
            sdk_canonical_uri(raw_path),
            sdk_canonical_query(query),
            block,
            signed,
            hashed_payload,
        ]
    )
    string_to_sign = f"{SDK_ALGORITHM}\n{sdk_date}\n{_sha256_hex(canonical.encode('utf-8'))}"
    return canonical, string_to_sign, signed, _hmac_hex(secret_key, string_to_sign)


def sdk_hashed_payload(body: bytes, content_sha256_header: str | None) -> str:
    """Empty body: SHA-256 of nothing; else ``X-Sdk-Content-Sha256`` literally when non-empty; else SHA-256."""
    if not body:
        return EMPTY_SHA256
    if content_sha256_header:  # the SDK tests truthiness: an empty header value falls back to hashing
        return content_sha256_header
    return _sha256_hex(body)


def sdk_signable(name: str) -> bool:
    """The Huawei SDK never signs a header whose name contains ``_``."""
    lowered = name.lower()
    return lowered not in UNSIGNED_HEADERS and "_" not in lowered


class HuaweiAkSkAuth(_KeySigner):
    """Huawei Cloud ``SDK-HMAC-SHA256`` request signing (AK/SK).

    :param ak: Access key (or the temporary AK).
    :param sk: Secret key, the HMAC key. Never logged or shown in ``repr``.
    :param project_id: sent and signed as ``X-Project-Id`` when given.
    :param security_token: temporary-credential token, sent and signed as ``X-Security-Token``.
    :param clock: zero-argument callable returning an aware UTC datetime (default: now).
    """

    requires_request_body = True

    def __init__(
        self,
        ak: str,
        sk: str,
        *,
        project_id: str | None = None,
        security_token: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(sk, security_token, clock)
        self.ak = ak
        self.project_id = project_id

    def __repr__(self) -> str:
        return f"HuaweiAkSkAuth(ak={self.ak!r}, project_id={self.project_id!r})"

    def sign(self, request: httpx.Request) -> None:
        """Add ``X-Sdk-Date``, project/token headers and ``Authorization`` to ``request`` in place."""
        headers = _trim_header_values(request)
        sdk_date = self._clock().astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        headers["X-Sdk-Date"] = sdk_date
        if self.project_id is not None:
            headers["X-Project-Id"] = self.project_id
        if self._security_token is not None:
            headers["X-Security-Token"] = self._security_token
        path, query = _split_target(request.url.raw_path)
        _, _, signed, signature = sdk_hmac_sign(
            method=request.method,
            raw_path=path,
            query=_parse_query(query, plus_is_space=False),
            # the SDK signs before its HTTP stack (requests) adds Accept: never signed, as on the SDK's wire
            headers=[(k, v) for k, v in headers.multi_items() if sdk_signable(k) and k.lower() != "accept"],
            hashed_payload=sdk_hashed_payload(request.content, headers.get("x-sdk-content-sha256")),
            sdk_date=sdk_date,
            secret_key=self._secret,
        )
        headers["Authorization"] = f"{SDK_ALGORITHM} Access={self.ak}, SignedHeaders={signed}, Signature={signature}"
