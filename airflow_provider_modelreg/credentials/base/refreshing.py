"""One short-lived key per source, renewed before it expires, one renewal in flight whoever asks
(:class:`RefreshingCredential`), and one credential per source configuration per process
(:func:`shared_credential`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_modelreg.credentials.base.flows import (
    CredentialSource,
    CredentialSourceError,
    TemporaryKey,
    arun_flow,
    known_secrets,
    run_flow,
)
from airflow_provider_modelreg.credentials.base.secrets import mask_derived
from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    one_line,
)
from airflow_provider_modelreg.transport import RegistryTransport

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


#: the name it had when the credential core was one module (log configurations and tests name it)
log = logging.getLogger("airflow_provider_modelreg.credentials.base")

ARRIVAL_BACKOFF = 30.0
ARRIVAL_BACKOFF_MAX = 300.0


def _arrival_problem(key: TemporaryKey, now: datetime) -> str | None:
    """Why a key just obtained is unusable (already expired, or inside its renewal margin), else None."""
    if key.expires_at is None:
        return None
    left = (key.expires_at - now).total_seconds()
    if left <= 0:
        state = f"already expired {-left:.0f} s ago"
    elif key.needs_refresh(now):  # a margin reckoned from the issue time the service gave
        state = f"expiring in {left:.0f} s, inside the renewal margin"
    else:
        return None
    return (
        f"the key obtained expires at {key.expires_at.strftime('%Y-%m-%dT%H:%M:%SZ')}, {state} by this machine's "
        f"clock ({now.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}): check the clock (a clock running "
        "ahead, or a service handing out stale keys)"
    )


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
        #: after keys that arrived unusable: no renewal before this time, the refusal is repeated instead
        self._refused_until: datetime | None = None
        self._refusal: CredentialSourceError | None = None
        self._refusals = 0

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
            refusal = self._refusal
            if refusal is not None and self._refused_until is not None and now < self._refused_until:
                # keys keep arriving expired: say so again without asking the service on every call
                if key is not None and key is not failed and key.usable(now):
                    return None, False
                raise CredentialSourceError(
                    refusal.source, refusal.step + " (not asked again before the spacing ends)", retryable=False
                )
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
        *,
        masked: bool = False,
    ) -> TemporaryKey:
        with self._lock:
            self._inflight = None
            self._quiet_until = None
            if key is not None:
                if not masked:
                    mask_derived(key.access_key_secret, key.security_token)
                problem = _arrival_problem(key, self._clock())
                if problem is None:
                    self._key = key
                    self._refusal = self._refused_until = None
                    self._refusals = 0
                    self.fetch_count += 1
                    future.set_result(key)
                    return key
                exc = self._refuse(CredentialSourceError(self.source.name, problem, retryable=False))
            stale = self._key
            assert exc is not None
            if isinstance(exc, CredentialSourceError):
                exc.scrub([*known_secrets(self.source), *(_key_secrets(stale)), *(_key_secrets(key))])
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

    def _refuse(self, exc: CredentialSourceError) -> CredentialSourceError:
        """Remember a key that arrived unusable: no new renewal until the spacing ends (logged at ERROR)."""
        self._refusals += 1
        spacing = min(ARRIVAL_BACKOFF_MAX, ARRIVAL_BACKOFF * 2 ** (self._refusals - 1))
        self._refusal = exc
        self._refused_until = self._clock() + timedelta(seconds=spacing)
        log.error("%s; the %s source is not asked again for %.0f s", exc, self.source.name, spacing)
        return exc

    def get(self, failed: TemporaryKey | None = None) -> TemporaryKey:
        """The key, obtained or renewed when needed (blocking; thread-safe).

        :param failed: a key the service refused: renew even if it has not expired.
        """
        while True:
            future, leader = self._claim(failed)
            if future is None:
                return self._cached()
            if leader:
                return self._renew(future, failed)
            try:
                return future.result()
            except _Abandoned:
                continue

    async def aget(self, failed: TemporaryKey | None = None) -> TemporaryKey:
        """Async twin of :meth:`get`: the same cache and the same single renewal, awaited without blocking."""
        while True:
            future, leader = self._claim(failed)
            if future is None:
                return self._cached()
            if leader:
                return await self._arenew(future, failed)
            try:
                return await asyncio.wrap_future(future)
            except _Abandoned:
                continue

    def _cached(self) -> TemporaryKey:
        """The cached key, when :meth:`_claim` said it serves."""
        assert self._key is not None
        return self._key

    def _renew(self, future: concurrent.futures.Future[TemporaryKey], failed: TemporaryKey | None) -> TemporaryKey:
        """Run the renewal this caller claimed, and settle it for every waiter."""
        try:
            key = run_flow(self.source)
        except BaseException as exc:
            return self._settle(future, None, exc, failed)
        return self._settle(future, key, None)

    async def _arenew(
        self, future: concurrent.futures.Future[TemporaryKey], failed: TemporaryKey | None
    ) -> TemporaryKey:
        """Async twin of :meth:`_renew`."""
        try:
            key = await arun_flow(self.source)
            # the sync masker may talk to the supervisor: off the event loop
            await asyncio.to_thread(mask_derived, key.access_key_secret, key.security_token)
        except BaseException as exc:
            return self._settle(future, None, exc, failed)
        return self._settle(future, key, None, masked=True)


def _key_secrets(key: TemporaryKey | None) -> list[str | None]:
    return [] if key is None else [key.access_key_secret, key.security_token]


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
