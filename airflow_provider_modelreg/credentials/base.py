"""Short-lived credentials shared by a process, refreshed before they expire.

A credential *source* (RAM role, OIDC role, instance metadata, ...) describes how a key is obtained as a generator
that yields :class:`Call` objects (which transport, which request) and receives the answers, then returns a
:class:`TemporaryKey`: the protocol logic holds no I/O. :func:`run_flow` drives it synchronously and
:func:`arun_flow` asynchronously, so every source exists once for both the worker (threads) and the triggerer
(event loop).

:class:`RefreshingCredential` caches the key of one source and renews it before it expires. One renewal is in
flight per credential, whoever asks: sync threads and event-loop tasks wait for the same
:class:`concurrent.futures.Future`. A renewal that fails while the cached key still has time left keeps the
cached key (WARNING); otherwise the error reaches the caller as a :class:`CredentialSourceError` naming the source
and the step.

:func:`shared_credential` keeps one :class:`RefreshingCredential` per source configuration per process, so many
hooks (one per task, per trigger) on one connection renew once.

Every secret obtained is registered with Airflow's secret masker the moment it is read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import httpx

from airflow_provider_modelreg.errors import ModelRegistryError, RegistryAuthError, one_line
from airflow_provider_modelreg.transport import RegistryTransport

__all__ = [
    "Call",
    "CredentialFlow",
    "CredentialSource",
    "CredentialSourceError",
    "RefreshingCredential",
    "TemporaryKey",
    "arun_flow",
    "clear_shared_credentials",
    "mask_derived",
    "read_token_file",
    "run_flow",
    "shared_credential",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def mask_derived(*secrets: str | None) -> None:
    """Register derived secrets (temporary keys, tokens) with Airflow's masker as soon as they are read."""
    from airflow.providers.common.compat.sdk import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


def read_token_file(source: str, path: str) -> str:
    """An OIDC token file's stripped content, read afresh (the kubelet rotates it) and masked at once.

    :raises CredentialSourceError: the file cannot be read or is empty (naming the source and the path).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialSourceError(source, f"OIDC token file not readable: {path} ({type(exc).__name__})") from None
    if not token:
        raise CredentialSourceError(source, f"OIDC token file is empty: {path}")
    mask_derived(token)
    return token


class CredentialSourceError(RegistryAuthError):
    """A credential could not be obtained from its source.

    :param source: the source, e.g. ``oidc_role_arn``.
    :param step: what failed, e.g. ``OIDC token file not readable: /var/run/secrets/token``.
    :param status_code: HTTP status of the answer that failed the step (0 when no answer was involved).
    :param code: vendor error code of that answer, if any.
    :param request_id: vendor request id of that answer, if any.
    """

    def __init__(
        self,
        source: str,
        step: str,
        *,
        status_code: int = 0,
        code: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.source = source
        self.step = one_line(step)
        super().__init__(
            status_code=status_code,
            code=code,
            message=f"credential source {source}: {self.step}",
            request_id=request_id,
            attempts=attempts,
        )


@dataclass(frozen=True)
class TemporaryKey:
    """An access key as signing needs it; the secret and the token are secrets and never shown.

    :param access_key_id: AccessKey ID (Alibaba) or AK (Huawei).
    :param access_key_secret: the signing secret (secret).
    :param security_token: STS / security token of a temporary key (secret), None for a long-lived key.
    :param expires_at: when the key stops working (aware UTC), None when it does not expire.
    :param source: the source that produced it.
    :param issued_at: when it was issued (aware UTC), if known: the renewal margin is a share of the lifetime.
    """

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    source: str = "access_key"
    issued_at: datetime | None = None

    def needs_refresh(self, now: datetime) -> bool:
        """True when less than ``min(300 s, 20 % of the lifetime)`` is left (never for a key without expiry)."""
        if self.expires_at is None:
            return False
        lifetime = (self.expires_at - (self.issued_at or self.expires_at - timedelta(hours=1))).total_seconds()
        margin = min(300.0, 0.2 * max(lifetime, 0.0))
        return (self.expires_at - now).total_seconds() < margin

    def usable(self, now: datetime, slack: float = 5.0) -> bool:
        """True while the key has more than ``slack`` seconds left."""
        return self.expires_at is None or (self.expires_at - now).total_seconds() > slack


@dataclass(frozen=True)
class Call:
    """One request a credential flow asks its shell to send (through ``transport``, with its retry policy)."""

    transport: RegistryTransport
    method: str
    target: str
    params: Sequence[tuple[str, str]] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    #: what this request is for, named in errors (e.g. ``AssumeRole``)
    step: str = ""
    #: retried by the transport's policy (False: one attempt, e.g. a probe whose failure is itself an answer)
    retried: bool = True


CredentialFlow = Generator[Call, httpx.Response, TemporaryKey]


class CredentialSource(Protocol):
    """How one kind of credential is obtained, without I/O (see the module docstring)."""

    #: the name used in errors, logs and ``test_connection`` (e.g. ``ram_role_arn``)
    name: str

    def flow(self) -> CredentialFlow:
        """Yield the requests to send, receive each answer, return the key."""
        ...

    def cache_key(self) -> str:
        """A string that identifies the configuration (secrets only as digests), for process-wide sharing."""
        ...


#: STS answers a bad signature with the string it signed, which holds the request's parameters (a base
#: SecurityToken among them, percent-encoded twice so no masker would match it): never repeated
_STRING_TO_SIGN = re.compile(r"(?is)(server\s*)?string\s*to\s*sign.*")


def _wrap(source: str, call: Call, exc: ModelRegistryError) -> CredentialSourceError:
    if isinstance(exc, CredentialSourceError):
        return exc
    status = getattr(exc, "http_status", 0) or 0
    code = getattr(exc, "code", None)
    rid = getattr(exc, "request_id", None)
    attempts = getattr(exc, "attempts", 1) or 1
    text = _STRING_TO_SIGN.sub("(the service's string to sign is not repeated)", str(exc))
    return CredentialSourceError(
        source,
        f"{call.step or call.target} failed: {text}",
        status_code=status,
        code=code,
        request_id=rid,
        attempts=attempts,
    )


def _options(call: Call) -> dict[str, Any]:
    """The transport arguments of a call (the same for the sync and the async shell)."""
    return {"params": call.params, "content": call.content, "headers": call.headers, "idempotent": call.retried}


@contextmanager
def _naming(source: CredentialSource, call: Call, flow: CredentialFlow) -> Iterator[None]:
    """A failed request ends the flow and becomes a :class:`CredentialSourceError` naming the source and step."""
    try:
        yield
    except ModelRegistryError as exc:
        flow.close()
        raise _wrap(source.name, call, exc) from exc


def run_flow(source: CredentialSource) -> TemporaryKey:
    """Drive a source's flow synchronously."""
    flow = source.flow()
    try:
        call = next(flow)
        while True:
            with _naming(source, call, flow):
                response = call.transport.request(call.method, call.target, **_options(call))
            call = flow.send(response)
    except StopIteration as done:
        key: TemporaryKey = done.value
        return key


async def arun_flow(source: CredentialSource) -> TemporaryKey:
    """Drive a source's flow asynchronously (the same generator as :func:`run_flow`)."""
    flow = source.flow()
    try:
        call = next(flow)
        while True:
            with _naming(source, call, flow):
                response = await call.transport.arequest(call.method, call.target, **_options(call))
            call = flow.send(response)
    except StopIteration as done:
        key: TemporaryKey = done.value
        return key


class _Abandoned(Exception):
    """The caller renewing a key was cancelled: whoever waited for it claims the renewal afresh."""


class RefreshingCredential:
    """The cached key of one source, renewed before expiry, one renewal in flight for the whole process.

    :param source: the :class:`CredentialSource`.
    :param clock: zero-argument callable returning an aware UTC datetime (tests).
    """

    def __init__(self, source: CredentialSource, *, clock: Clock | None = None) -> None:
        self.source = source
        self._clock = clock or _utcnow
        self._lock = threading.Lock()
        self._key: TemporaryKey | None = None
        self._inflight: concurrent.futures.Future[TemporaryKey] | None = None
        #: after a failed renewal, the still-valid key serves without a new attempt until this time
        self._quiet_until: datetime | None = None
        #: keys obtained so far (tests assert exactly-one renewal on it)
        self.fetch_count = 0

    def __repr__(self) -> str:
        return f"RefreshingCredential(source={self.source.name!r}, fetched={self.fetch_count})"

    @property
    def current(self) -> TemporaryKey | None:
        """The cached key, fresh or not (None before the first fetch)."""
        return self._key

    def _claim(self, failed: TemporaryKey | None) -> tuple[concurrent.futures.Future[TemporaryKey] | None, bool]:
        """(None, _) when the cached key serves; else the renewal to wait for and whether this caller runs it."""
        with self._lock:
            key = self._key
            now = self._clock()
            if key is not None and key is not failed:
                if not key.needs_refresh(now):
                    return None, False
                if self._quiet_until is not None and now < self._quiet_until and key.usable(now):
                    return None, False
            if self._inflight is not None:
                return self._inflight, False
            future: concurrent.futures.Future[TemporaryKey] = concurrent.futures.Future()
            # running: a waiter that is cancelled can no longer cancel the renewal the others wait for
            future.set_running_or_notify_cancel()
            self._inflight = future
            return future, True

    def _settle(
        self,
        future: concurrent.futures.Future[TemporaryKey],
        key: TemporaryKey | None,
        exc: BaseException | None,
        failed: TemporaryKey | None = None,
    ) -> TemporaryKey:
        with self._lock:
            self._inflight = None
            self._quiet_until = None
            if key is not None:
                mask_derived(key.access_key_secret, key.security_token)
                self._key = key
                self.fetch_count += 1
                future.set_result(key)
                return key
            stale = self._key
            assert exc is not None
            if (
                isinstance(exc, Exception)
                and stale is not None
                and stale is not failed  # a key the service refused is no fallback
                and stale.usable(self._clock())
                and isinstance(exc, ModelRegistryError)
            ):
                # The cached key still works for a while: keep serving it, and try again after a quarter of
                # what is left (at most 30 s), not on every request.
                now = self._clock()
                left = (stale.expires_at - now).total_seconds() if stale.expires_at else 120.0
                self._quiet_until = now + timedelta(seconds=min(30.0, max(1.0, left / 4)))
                log.warning(
                    "Renewing the %s credential failed; the current one is used until %s: %s",
                    self.source.name,
                    stale.expires_at.isoformat() if stale.expires_at else "-",
                    one_line(exc),
                )
                future.set_result(stale)
                return stale
            # the waiters share the error; if the renewer was cancelled instead, they claim afresh
            future.set_exception(exc if isinstance(exc, Exception) else _Abandoned())
            raise exc

    def get(self, failed: TemporaryKey | None = None) -> TemporaryKey:
        """The key, obtained or renewed when needed (blocking; thread-safe).

        :param failed: a key the service refused: renew even if it has not expired.
        """
        while True:
            future, leader = self._claim(failed)
            if future is None:
                assert self._key is not None
                return self._key
            if leader:
                try:
                    key = run_flow(self.source)
                except BaseException as exc:
                    return self._settle(future, None, exc, failed)
                return self._settle(future, key, None)
            try:
                return future.result()
            except _Abandoned:
                continue

    async def aget(self, failed: TemporaryKey | None = None) -> TemporaryKey:
        """Async twin of :meth:`get`: the same cache and the same single renewal, awaited without blocking."""
        while True:
            future, leader = self._claim(failed)
            if future is None:
                assert self._key is not None
                return self._key
            if leader:
                try:
                    key = await arun_flow(self.source)
                except BaseException as exc:
                    return self._settle(future, None, exc, failed)
                return self._settle(future, key, None)
            try:
                return await asyncio.wrap_future(future)
            except _Abandoned:
                continue


_SHARED: dict[str, RefreshingCredential] = {}
_SHARED_LOCK = threading.Lock()


def digest(*parts: str | None) -> str:
    """A short digest of secrets, for :meth:`CredentialSource.cache_key` (the secrets never appear in keys)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(b"\x00" if part is None else part.encode("utf-8") + b"\x01")
    return h.hexdigest()[:24]


def _transport_settings(source: CredentialSource) -> str:
    """The request settings of a source's transports, so that hooks with other retry budgets, deadlines, proxies
    or CA bundles (a connection test's single short attempt among them) never share a renewal path."""
    parts = []
    for name, value in sorted(getattr(source, "__dict__", {}).items()):
        if hasattr(value, "flow") and hasattr(value, "cache_key"):  # a source made of sources
            parts.append(f"{name}=({_transport_settings(value)})")
        elif isinstance(value, RegistryTransport):
            given = (id(value._given), id(value._agiven))  # injected test transports are distinct identities
            parts.append(
                f"{name}={value.base_url}|{value.retry}|{value.max_response_bytes}|{value.ca_bundle}|{given}|"
                + digest(value.proxy)
            )
    return ";".join(parts)


def shared_credential(source: CredentialSource, **kwargs: Any) -> RefreshingCredential:
    """The process-wide :class:`RefreshingCredential` of a source configuration and its request settings (created
    on first use)."""
    key = f"{type(source).__module__}.{type(source).__qualname__}:{source.cache_key()}:{_transport_settings(source)}"
    with _SHARED_LOCK:
        credential = _SHARED.get(key)
        if credential is None:
            credential = _SHARED[key] = RefreshingCredential(source, **kwargs)
        return credential


def clear_shared_credentials() -> None:
    """Forget every shared credential (tests; a process normally keeps them for its lifetime)."""
    with _SHARED_LOCK:
        _SHARED.clear()
