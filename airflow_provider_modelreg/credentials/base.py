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

Failures: every :class:`CredentialSourceError` says whether asking again can help (``retryable``: no answer,
timeouts, 408/429/5xx and throttling codes; not 401/403, invalid requests, malformed answers or settings) and names
the source, the step and the service at its URL (never its userinfo). Server text is scrubbed of every secret the
source knows (base keys, tokens, OIDC and metadata tokens, the cached key) before it enters a message or a log. A
key that arrives already expired, or inside its renewal margin, is refused ("check the clock") and the source is
not asked again for 30 s (doubling up to 300 s) unless a still-valid cached key serves meanwhile. Answers are read
with the registry's body cap and JSON depth limit; token and profile files with a size cap, opened without
blocking, regular files only; the async driver runs the flows' own steps (file reads, parsing) in a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import hashlib
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from urllib.parse import quote, quote_plus, urlsplit

import httpx

from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryAPIError,
    RegistryAuthError,
    RegistryResponseError,
    one_line,
    retryable_status,
)
from airflow_provider_modelreg.transport import RegistryTransport

__all__ = [
    "Call",
    "CredentialFlow",
    "CredentialSource",
    "CredentialSourceError",
    "FileRefused",
    "RefreshingCredential",
    "TemporaryKey",
    "arun_flow",
    "clear_shared_credentials",
    "mask_derived",
    "parse_json_answer",
    "read_small_file",
    "read_token_file",
    "run_flow",
    "scrub",
    "shared_credential",
    "shown_url",
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


#: Largest token file read (a Kubernetes service-account token is about 1 KB).
TOKEN_FILE_CAP = 64 * 1024


class FileRefused(Exception):
    """A credential file that is no regular file, or is larger than its cap."""


def read_small_file(path: str, cap: int) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes, opened without blocking.

    The open is non-blocking (``O_NONBLOCK``: a FIFO without a writer does not hang it) and the file must be a
    regular file (``fstat``): FIFOs, sockets and devices (``/dev/zero``) are refused; at most ``cap + 1`` bytes are
    ever read. Call it off the event loop.

    :raises OSError: the file cannot be opened (missing, no permission).
    :raises FileRefused: not a regular file, or larger than ``cap`` (the message says which).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("not a regular file (a FIFO, socket or device?)")
        if info.st_size > cap:
            raise FileRefused(f"larger than {cap} bytes ({info.st_size} bytes)")
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            try:
                chunk = os.read(fd, cap + 1 - size)
            except BlockingIOError:  # pragma: no cover - a regular file never blocks
                raise OSError(errno.EAGAIN, "read would block") from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:
            raise FileRefused(f"larger than {cap} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_token_file(source: str, path: str) -> str:
    """An OIDC token file's stripped content, read afresh (the kubelet rotates it) and masked at once.

    At most :data:`TOKEN_FILE_CAP` bytes of a regular file, opened without blocking (see :func:`read_small_file`).

    :raises CredentialSourceError: the file cannot be read, is no regular file, is too large or is empty (naming
        the source and the path).
    """
    try:
        token = read_small_file(path, TOKEN_FILE_CAP).decode("utf-8").strip()
    except FileRefused as exc:
        raise CredentialSourceError(source, f"OIDC token file refused: {path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialSourceError(source, f"OIDC token file not readable: {path} ({type(exc).__name__})") from None
    if not token:
        raise CredentialSourceError(source, f"OIDC token file is empty: {path}")
    mask_derived(token)
    return token


def shown_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL for messages: never its userinfo (``ak:secret@``), query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(a URL that cannot be shown)"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else f"{netloc}{parts.path}"


#: secrets shorter than this are not scrubbed (replacing "1" in every message would garble it, and reveal it)
_SCRUB_MIN = 6


#: a message cut short ends a secret's prefix this long or longer: scrubbed too
_PARTIAL_MIN = 4


def scrub(text: str, secrets: Sequence[str | None]) -> str:
    """``text`` with every secret (and its percent-encoded forms) replaced by ``***``.

    Server text reaches us cut at a few hundred characters, possibly inside a secret: a tail that is the start of
    a secret is replaced too.
    """
    forms: set[str] = set()
    for secret in {s for s in secrets if s and len(s) >= _SCRUB_MIN}:
        forms.update({secret, quote(secret, safe=""), quote_plus(secret), quote(quote(secret, safe=""), safe="")})
    for form in sorted(forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, "***")
    body, dots = (text[:-3], "...") if text.endswith("...") else (text, "")
    for form in forms:
        for size in range(len(form) - 1, _PARTIAL_MIN - 1, -1):
            if body.endswith(form[:size]):
                return body[:-size] + "***" + dots
    return text


class CredentialSourceError(RegistryAuthError):
    """A credential could not be obtained from its source.

    :param source: the source, e.g. ``oidc_role_arn``.
    :param step: what failed, e.g. ``OIDC token file not readable: /var/run/secrets/token``.
    :param status_code: HTTP status of the answer that failed the step (0 when no answer was involved).
    :param code: vendor error code of that answer, if any.
    :param request_id: vendor request id of that answer, if any.
    :param retryable: whether asking the source again can help (no answer, timeouts, 408/429/5xx, throttling);
        default: from ``status_code`` when there was an answer, False when none was involved (a missing file, a
        malformed setting).
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
        retryable: bool | None = None,
    ) -> None:
        self.source = source
        self.step = one_line(step)
        if retryable is None:
            retryable = bool(status_code) and retryable_status(status_code)
        super().__init__(
            status_code=status_code,
            code=code,
            message=f"credential source {source}: {self.step}",
            request_id=request_id,
            attempts=attempts,
            retryable=retryable,
        )
        self._render()

    def _render(self) -> None:
        # not the registry's "HTTP 0 -" form: the source and step first, the answer's status and ids after
        answer = []
        if self.http_status:
            answer.append(f"HTTP {self.http_status}")
        if self.code:
            answer.append(self.code)
        if self.request_id:
            answer.append(f"request id {self.request_id}")
        tries = f" after {self.attempts} attempts" if self.attempts > 1 and "attempt" not in self.step else ""
        shown = f" ({', '.join(answer)})" if answer else ""
        self.args = (f"{self.message}{shown}{tries}",)

    def scrub(self, secrets: Sequence[str | None]) -> CredentialSourceError:
        """Replace every known secret a server echoed in the step (in place); returns self."""
        step = scrub(self.step, secrets)
        if step != self.step:
            self.step = step
            self.message = f"credential source {self.source}: {step}"
            self._render()
        return self


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
    #: the service asked, named in errors with its URL (e.g. ``ECS metadata service``)
    service: str = ""


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


_UNREACHABLE = re.compile(r"^\S+ registry at \S+ unreachable after (\d+) attempt\(s\): ", re.S)


def _cause(exc: ModelRegistryError) -> str:
    """What went wrong, in the words of the failed request (no "registry at", no "HTTP 0")."""
    if isinstance(exc, RegistryAPIError):
        return exc.message
    if isinstance(exc, RegistryResponseError):
        return f"unreadable answer: {exc.field}: {exc.problem}"
    text = str(exc)
    found = _UNREACHABLE.match(text)
    if found is None:
        return text
    rest = text[found.end() :]
    if "refused" in rest.lower():
        rest = f"connection refused ({rest})"
    return f"no answer after {found.group(1)} attempt(s): {rest}"


def _transport_secrets(transport: RegistryTransport) -> list[str | None]:
    """The secrets a transport signs with (base keys of STS and IAM calls), for :func:`scrub`."""
    auth = getattr(transport, "auth", None)
    return [getattr(auth, name, None) for name in ("_secret", "_token", "_sk", "_security_token")]


def known_secrets(source: CredentialSource, *calls: Call) -> list[str | None]:
    """Every secret a source knows (its ``secrets()``, the signing keys of its transports) for :func:`scrub`."""
    found: list[str | None] = []
    own = getattr(source, "secrets", None)
    if callable(own):
        found.extend(own())
    for value in getattr(source, "__dict__", {}).values():
        if isinstance(value, RegistryTransport):
            found.extend(_transport_secrets(value))
        elif value is not source and hasattr(value, "flow") and hasattr(value, "cache_key"):
            found.extend(known_secrets(value))  # a source made of sources
    for call in calls:
        found.extend(_transport_secrets(call.transport))
    return [s for s in found if isinstance(s, str)]


def _where(call: Call) -> str:
    service = call.service or "service"
    return f"{service} at {shown_url(call.transport.base_url)}: {call.method} {call.target.partition('?')[0]}"


def _wrap(source: CredentialSource, call: Call, exc: ModelRegistryError) -> CredentialSourceError:
    if isinstance(exc, CredentialSourceError):
        return exc.scrub(known_secrets(source, call))
    status = getattr(exc, "http_status", 0) or 0
    code = getattr(exc, "code", None)
    rid = getattr(exc, "request_id", None)
    attempts = getattr(exc, "attempts", 1) or 1
    text = _STRING_TO_SIGN.sub("(the service's string to sign is not repeated)", _cause(exc))
    text = scrub(text, known_secrets(source, call))
    return CredentialSourceError(
        source.name,
        f"{call.step or call.target} failed: {_where(call)}: {text}",
        status_code=status,
        code=code,
        request_id=rid,
        attempts=attempts,
        retryable=bool(getattr(exc, "retryable", False)),
    )


def parse_json_answer(source: str, step: str, response: httpx.Response) -> Any:
    """The JSON of a credential service's answer, read with the registry's limits.

    The body was already capped by the transport (``max_response_bytes``, as registry answers); JSON nested too
    deeply to read (``[`` x 100,000) is a typed error, never a ``RecursionError``.

    :raises CredentialSourceError: not JSON, or nested too deeply (naming the source and the step).
    """
    rid = response.headers.get("x-request-id") or response.headers.get("x-acs-request-id")
    try:
        return json.loads(response.content)
    except RecursionError:
        problem = "the answer is JSON nested too deeply to read"
    except ValueError:
        problem = "the answer is not JSON"
    raise CredentialSourceError(source, f"{step}: {problem}", status_code=response.status_code, request_id=rid)


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
        raise _wrap(source, call, exc) from exc


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
    except CredentialSourceError as exc:  # made by the flow from a server's text: no secret it knows
        exc.scrub(known_secrets(source))
        raise


def _step(flow: CredentialFlow, response: httpx.Response | None) -> Call | TemporaryKey:
    """One step of a flow in a worker thread: the next call, or the key (a StopIteration cannot cross threads)."""
    try:
        return next(flow) if response is None else flow.send(response)
    except StopIteration as done:
        key: TemporaryKey = done.value
        return key


async def arun_flow(source: CredentialSource) -> TemporaryKey:
    """Drive a source's flow asynchronously (the same generator as :func:`run_flow`).

    The flow's own steps (token and profile files read, answers parsed, secrets masked) run in a worker thread,
    never on the event loop; only the requests are awaited on it.
    """
    flow = source.flow()
    try:
        step = await asyncio.to_thread(_step, flow, None)
        while isinstance(step, Call):
            call = step
            with _naming(source, call, flow):
                response = await call.transport.arequest(call.method, call.target, **_options(call))
            step = await asyncio.to_thread(_step, flow, response)
        return step
    except CredentialSourceError as exc:
        exc.scrub(known_secrets(source))
        raise


#: After a key arrived already expired, no new renewal for this long (seconds; doubled on each repeat, capped).
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
                    # the sync masker may talk to the supervisor: off the event loop
                    await asyncio.to_thread(mask_derived, key.access_key_secret, key.security_token)
                except BaseException as exc:
                    return self._settle(future, None, exc, failed)
                return self._settle(future, key, None, masked=True)
            try:
                return await asyncio.wrap_future(future)
            except _Abandoned:
                continue


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
