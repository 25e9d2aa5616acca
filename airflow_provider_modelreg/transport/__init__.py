"""The one HTTP transport both hooks use: connection pools, deadlines, retries, error mapping and response parsing.

* One sync and one async httpx connection pool (``httpx.HTTPTransport``) per :class:`RegistryTransport`
  (keep-alive), sharing one process-wide SSL context per CA bundle (a context per pool costs ~0.8 MB and ~35 ms).
  Proxies (the ``proxy`` setting, else ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``) and the CA bundle are resolved
  once per transport, never per request. TLS verification cannot be turned off.
* Deadlines: every attempt (connect + headers + body) has a wall-clock deadline and every call (all attempts and
  the waits between them) another. They are enforced on each socket operation by a thin wrapper around httpcore's
  network backend, so a server trickling one byte at a time cannot hold a call past its deadline.
* Bodies are read and decoded (gzip, deflate) in a streaming way, and refused beyond ``max_response_bytes`` of
  *decoded* data: a gzip bomb is stopped at the cap.
* Retries sit above the send of one attempt, so that the ``httpx.Auth`` flow re-signs every attempt with a fresh
  date and nonce. The decisions are made by :class:`RetryPlan`, plain data in and out (no I/O), used by both the
  sync and the async loop. Only idempotent requests are retried, on connection errors, timeouts, 408, 429, 5xx and
  vendor throttling codes, with exponential backoff and full jitter, honouring ``Retry-After`` (seconds) and
  ``x-acs-retry-after`` (ms), never waiting less than a floor. Deterministic failures (a certificate that does not
  verify, a header value HTTP cannot carry) are not retried. Each retry is logged at WARNING. When the budget or the
  call deadline is spent the last error is raised, typed; a partial result is never returned.
* Errors map to :mod:`airflow_provider_modelreg.errors` by vendor code first and HTTP status second. No message
  carries a request header value.

One module per concern, lowest first: :mod:`.retry` (the retry plan), :mod:`.network` (TLS, proxies),
:mod:`.deadlines` (the deadline network backends), :mod:`.responses` (error mapping, parsing), :mod:`.bodies`
(streamed, capped decoding) and :mod:`.client` (:class:`RegistryTransport`). The names below are the public ones.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.renamed import renamed_class

if TYPE_CHECKING:
    from airflow_provider_modelreg.transport.client import DEFAULT_MAX_RESPONSE_BYTES, USER_AGENT, RegistryTransport
    from airflow_provider_modelreg.transport.deadlines import is_socket_readable
    from airflow_provider_modelreg.transport.network import (
        environment_proxy,
        is_loopback,
        public_url,
        shared_ssl_context,
    )
    from airflow_provider_modelreg.transport.responses import Vendor, map_error, parse_model
    from airflow_provider_modelreg.transport.retry import (
        DEFAULT_RETRY,
        DEFAULT_TIMEOUT,
        Failure,
        RetryDecision,
        RetryPlan,
        RetryPolicy,
    )

#: Each public name's module, imported when the name is first asked for: a DAG file imports the hooks, and the
#: hooks need the client (TLS, proxies, deadline backends) only when they build one (P4, import cost).
_HOMES = {
    "DEFAULT_MAX_RESPONSE_BYTES": "client",
    "USER_AGENT": "client",
    "RegistryTransport": "client",
    "is_socket_readable": "deadlines",
    "environment_proxy": "network",
    "is_loopback": "network",
    "public_url": "network",
    "shared_ssl_context": "network",
    "Vendor": "responses",
    "map_error": "responses",
    "parse_model": "responses",
    "DEFAULT_RETRY": "retry",
    "DEFAULT_TIMEOUT": "retry",
    "Failure": "retry",
    "RetryDecision": "retry",
    "RetryPlan": "retry",
    "RetryPolicy": "retry",
}

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "Failure",
    "RegistryTransport",
    "RetryDecision",
    "RetryPlan",
    "RetryPolicy",
    "Vendor",
    "environment_proxy",
    "is_loopback",
    "is_socket_readable",
    "map_error",
    "parse_model",
    "public_url",
    "shared_ssl_context",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
        globals()[name] = value  # asked once
        return value
    if name == "Decision":  # the deprecated name: two modules had a class called Decision
        __getattr__("RetryDecision")
    return renamed_class(globals(), name, {"Decision": "RetryDecision"})


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
