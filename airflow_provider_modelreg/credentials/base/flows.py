"""Credential sources as sans-IO flows: a generator yields :class:`Call` objects and receives the answers, then
returns a :class:`TemporaryKey`; :func:`run_flow` drives one synchronously and :func:`arun_flow` asynchronously.
Failures become a :class:`CredentialSourceError` naming the source, the step and the service."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx

from airflow_provider_modelreg.credentials.base.secrets import scrub, shown_url
from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryAPIError,
    RegistryAuthError,
    RegistryResponseError,
    one_line,
    retryable_status,
)
from airflow_provider_modelreg.transport import RegistryTransport


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
