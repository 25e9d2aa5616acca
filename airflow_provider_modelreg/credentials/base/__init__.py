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

One module per concern: :mod:`.secrets` (masking, scrubbing), :mod:`.flows` (sources as sans-IO flows and
their drivers), :mod:`.files` (token and profile files) and :mod:`.refreshing` (the refreshing, shared credential).
The names below are importable from here as before.
"""

from __future__ import annotations

from airflow_provider_modelreg.credentials.base.files import (
    TOKEN_FILE_CAP,
    FileRefused,
    read_small_file,
    read_token_file,
)
from airflow_provider_modelreg.credentials.base.flows import (
    Call,
    CredentialFlow,
    CredentialSource,
    CredentialSourceError,
    TemporaryKey,
    arun_flow,
    known_secrets,
    parse_json_answer,
    run_flow,
)
from airflow_provider_modelreg.credentials.base.refreshing import (
    ARRIVAL_BACKOFF,
    ARRIVAL_BACKOFF_MAX,
    Clock,
    RefreshingCredential,
    clear_shared_credentials,
    digest,
    shared_credential,
)
from airflow_provider_modelreg.credentials.base.secrets import mask_derived, scrub, shown_url

__all__ = [
    "ARRIVAL_BACKOFF",
    "ARRIVAL_BACKOFF_MAX",
    "TOKEN_FILE_CAP",
    "Call",
    "Clock",
    "CredentialFlow",
    "CredentialSource",
    "CredentialSourceError",
    "FileRefused",
    "RefreshingCredential",
    "TemporaryKey",
    "arun_flow",
    "clear_shared_credentials",
    "digest",
    "known_secrets",
    "mask_derived",
    "parse_json_answer",
    "read_small_file",
    "read_token_file",
    "run_flow",
    "scrub",
    "shared_credential",
    "shown_url",
]
