"""Typed errors of the provider.

Every error is an :class:`~airflow.sdk.exceptions.AirflowException`, so Airflow treats them as task failures,
while callers can tell them apart:

* :class:`RegistryInputError` — bad input found *before* any request was sent (names the field and the rule).
* :class:`RegistryConnectionConfigError` — a bad Airflow connection (missing login, unknown region, ...).
* :class:`RegistryAPIError` and its subclasses — the registry answered with an error. They carry the HTTP status,
  the vendor code, the message and the request id. Classification is by vendor code first, HTTP status second.
* :class:`RegistryTransportError` — no answer at all (connection refused, reset, timeout), after retries.
* :class:`RegistryResponseError` — an answer we cannot read (HTML, truncated JSON, wrong types, missing fields),
  or pages of a listing that contradict each other (a total that does not match the pages, a repeated page).
  :class:`RegistryPagingLimitError`, its subclass: a listing would need more than ``max_pages`` requests.
* :class:`RegistryAmbiguousVersionError` — a lookup by name matched several versions (lists them).
* :class:`RegistryVersionFailedError` — a version the registry created asynchronously failed.
* :class:`RegistryWaitTimeoutError` — a version did not show up (or settle) within the task's ``timeout``.

Every error says whether asking again can help: :attr:`ModelRegistryError.retryable`, set where the error is made.
Retryable: no answer (connection refused or reset, timeouts), HTTP 408, 429 and 5xx, throttling codes, from any
service (registry, STS, IAM, metadata, credentials URI), and answers cut short on the way. Not retryable: refusals
(401/403 after a renewal, invalid requests, unknown models), bad input, answers the gate cannot judge. Sensors in
every mode, the approval trigger and the watcher decide from this attribute alone, within one failure budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException

__all__ = [
    "ModelRegistryError",
    "RegistryAPIError",
    "RegistryAmbiguousVersionError",
    "RegistryAuthError",
    "RegistryConnectionConfigError",
    "RegistryInputError",
    "RegistryInvalidRequestError",
    "RegistryNotFoundError",
    "RegistryPagingLimitError",
    "RegistryResponseError",
    "RegistryServerError",
    "RegistryStateError",
    "RegistryThrottledError",
    "RegistryTransportError",
    "RegistryVersionFailedError",
    "RegistryWaitTimeoutError",
    "one_line",
    "retryable_status",
]

_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def one_line(text: object, limit: int = 500) -> str:
    """``text`` as one printable line: control characters escaped, at most ``limit`` characters (then ``...``)."""
    out = str(text).translate(_ESCAPES)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def retryable_status(status_code: int | None) -> bool:
    """True for the HTTP statuses that say "try again later": none at all (no answer), 408, 429 and 5xx."""
    return not status_code or status_code in (408, 429) or status_code >= 500


class ModelRegistryError(AirflowException):
    """Base class of every error raised by this provider.

    :attr retryable: True when asking again later can help (see the module docstring); False by default.
    """

    retryable: bool = False


class RegistryInputError(ModelRegistryError, ValueError):
    """An argument breaks the registry's documented rules; nothing was sent.

    :param field: the argument (or connection field) at fault, e.g. ``version_name``.
    :param rule: the rule it breaks, in words.
    :param value: the offending value (shown with ``repr``; never pass a secret here).
    """

    def __init__(self, field: str, rule: str, value: object = None) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        shown = "" if value is None else f" (got {value!r:.80})"
        super().__init__(f"invalid {field}: {rule}{shown}")


class RegistryConnectionConfigError(RegistryInputError):
    """The Airflow connection is incomplete or inconsistent (field = connection field or extra key)."""


class RegistryAPIError(ModelRegistryError):
    """The registry answered with an error.

    :param status_code: HTTP status of the answer.
    :param code: vendor error code (``InvalidModelVersion.NotFound``, ``APIG.0308`` ...), or None.
    :param message: vendor error message.
    :param request_id: vendor request id (Alibaba: body ``RequestId``; Huawei: header ``X-Request-Id``).
    :param attempts: how many attempts were made before giving up.
    :param retryable: whether asking again can help (default: from the status, see :func:`retryable_status`).
    """

    def __init__(
        self,
        *,
        status_code: int,
        code: str | None,
        message: str,
        request_id: str | None,
        attempts: int = 1,
        retryable: bool | None = None,
    ) -> None:
        self.retryable = retryable_status(status_code) if retryable is None else retryable
        self.http_status = status_code
        self.code = None if code is None else one_line(code, 100)
        self.message = one_line(message)
        self.request_id = None if request_id is None else one_line(request_id, 100)
        self.attempts = attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(
            f"{type(self).__name__}: HTTP {status_code} {self.code or '-'}: {self.message} "
            f"(request id {self.request_id or '-'}){tries}"
        )


class RegistryNotFoundError(RegistryAPIError):
    """The model or version does not exist."""


class RegistryAuthError(RegistryAPIError):
    """Credentials were refused: unknown key, bad signature, stale date, reused nonce, bad token, no permission."""


class RegistryThrottledError(RegistryAPIError):
    """The registry throttled the caller and the retry budget ran out (always retryable)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["retryable"] = True
        super().__init__(**kwargs)


class RegistryInvalidRequestError(RegistryAPIError):
    """The registry refused a parameter that passed our own checks."""


class RegistryStateError(RegistryAPIError):
    """The request conflicts with the resource's state (e.g. changing a terminal approval status)."""


class RegistryServerError(RegistryAPIError):
    """The registry failed (5xx) and the retry budget ran out."""


class RegistryTransportError(ModelRegistryError):
    """No usable answer: connection refused or reset, or a timeout, after the retry budget ran out.

    :param message: what happened (the last connection error).
    :param attempts: attempts made.
    """

    retryable = True

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(one_line(message, 1000))
        self.attempts = attempts
        self.request_id: str | None = None


class RegistryResponseError(ModelRegistryError):
    """The answer could not be read: not JSON, truncated, wrong types or missing required fields.

    :param field: the JSON path at fault (``body`` when the body as a whole is unreadable).
    :param problem: what is wrong with it.
    :param request_id: vendor request id, when one could be found.
    :param status_code: HTTP status of the answer.

    Retryable unless the answer was a complete 200 the gate cannot judge (asking again repeats it): an HTML page
    from a proxy's 502 or a body cut short on the way is not the registry's last word.
    """

    def __init__(self, *, field: str, problem: str, request_id: str | None, status_code: int | None) -> None:
        self.retryable = status_code != 200
        self.field = one_line(field, 200)
        self.problem = one_line(problem)
        self.request_id = None if request_id is None else one_line(request_id, 100)
        self.http_status = status_code
        super().__init__(
            f"unreadable registry response (HTTP {status_code}, request id {self.request_id or '-'}): "
            f"{self.field}: {self.problem}"
        )


class RegistryPagingLimitError(RegistryResponseError):
    """A listing would need more requests than its cap (``max_pages``): a lying or runaway total, or a registry
    that really holds more than the cap allows (then raise ``max_pages``).

    :param max_pages: the cap that was reached.
    """

    def __init__(self, *, field: str, problem: str, max_pages: int) -> None:
        self.max_pages = max_pages
        super().__init__(field=field, problem=problem, request_id=None, status_code=None)
        self.retryable = False  # the next poll needs as many pages


class RegistryAmbiguousVersionError(ModelRegistryError, LookupError):
    """A lookup by name matched several versions (Fabric names are not unique); nothing was chosen.

    :param model_id: the model.
    :param name: the name looked up.
    :param candidates: the matching versions (each with ``id`` and ``create_time``), listed in the message newest
        first; look the one you mean up by ``version_id``, or pass ``pick="newest"``.
    """

    def __init__(self, model_id: str, name: str, candidates: Sequence[Any]) -> None:
        ordered = sorted(
            candidates,
            key=lambda v: (v.create_time.timestamp() if v.create_time else float("-inf"), v.id),
            reverse=True,
        )
        self.model_id = model_id
        self.name = name
        self.candidates: list[dict[str, str | None]] = [
            {"version_id": v.id, "created_at": v.create_time.isoformat() if v.create_time else None} for v in ordered
        ]
        shown = ", ".join(f"{c['version_id']} (created {c['created_at'] or '?'})" for c in self.candidates[:20])
        more = f" and {len(self.candidates) - 20} more" if len(self.candidates) > 20 else ""
        super().__init__(
            f"model {one_line(model_id, 100)} has {len(self.candidates)} versions named {one_line(name, 100)!r}: "
            f"{shown}{more}; give version_id, or pick='newest' to take the newest"
        )


class RegistryVersionFailedError(ModelRegistryError):
    """A model version that the registry creates asynchronously (Fabric) failed: it cannot be used or made current.

    :param model_id: the model.
    :param version_id: the failed version's id.
    :param status: the status the registry shows.
    """

    def __init__(self, model_id: str, version_id: str, status: str) -> None:
        self.model_id = model_id
        self.version_id = version_id
        self.status = one_line(status, 100)
        super().__init__(f"model {one_line(model_id, 100)} version {one_line(version_id, 100)} failed ({self.status})")


class RegistryWaitTimeoutError(ModelRegistryError):
    """What a task waited for did not happen within its ``timeout`` (a version that never lists). Retryable: a later
    try may find it.

    :param what: what was awaited.
    :param timeout: the seconds waited.
    """

    retryable = True

    def __init__(self, what: str, timeout: float) -> None:
        self.what = one_line(what)
        self.timeout = timeout
        super().__init__(f"{self.what}: not there after {timeout:g} s")
