"""What an answer means: vendor errors mapped to typed exceptions (vendor code first, HTTP status second), the
retry plan's view of a failed attempt, and bodies parsed into models. No message carries a request header value."""

from __future__ import annotations

import json
import math
import ssl
from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryAPIError,
    RegistryAuthError,
    RegistryInvalidRequestError,
    RegistryNotFoundError,
    RegistryResponseError,
    RegistryServerError,
    RegistryStateError,
    RegistryThrottledError,
    one_line,
)
from airflow_provider_modelreg.transport.retry import _RETRY_STATUSES, Failure, RetryPolicy, _is_throttle_code

Vendor = Literal["pai", "fabric"]
M = TypeVar("M", bound=BaseModel)


class _TooDeep:
    """Marker: the body is JSON nested too deeply to parse."""


_TOO_DEEP = _TooDeep()


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except RecursionError:
        return _TOO_DEEP
    except ValueError:
        return None


def _find_huawei_error(body: Any, depth: int = 0) -> tuple[str | None, str | None]:
    """The Huawei SDK's search order: error_code/error_msg, errorCode/errorMsg, code/message, then one level down."""
    if not isinstance(body, dict):
        return None, None
    for code_key, msg_key in (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message")):
        if code_key in body:
            return str(body[code_key]), None if body.get(msg_key) is None else str(body[msg_key])
    if depth < 4:
        for value in body.values():
            if isinstance(value, dict):
                code, msg = _find_huawei_error(value, depth + 1)
                if code is not None:
                    return code, msg
    return None, None


def request_id_of(vendor: Vendor, response: httpx.Response, body: Any = None) -> str | None:
    """Alibaba: body ``RequestId`` (either case), else the ``x-acs-request-id`` header; Huawei: ``X-Request-Id``."""
    if vendor == "fabric":
        header: str | None = response.headers.get("x-request-id")
        return header
    if body is None:
        body = _json_or_none(response)
    if isinstance(body, dict):
        rid = body.get("RequestId", body.get("requestId"))
        if rid is not None:
            return str(rid)
    acs: str | None = response.headers.get("x-acs-request-id")
    return acs


def _classify(vendor: Vendor, status: int, code: str | None) -> type[RegistryAPIError]:
    if code is not None:
        if _is_throttle_code(code):
            return RegistryThrottledError
        if vendor == "pai":
            if code.startswith(("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidTimeStamp")) or code in {
                "SignatureNonceUsed",
                "IncompleteSignature",
                "InvalidSecurityToken.Expired",
                "InvalidSecurityToken.Malformed",
                "InvalidSecurityToken.MismatchWithAccessKey",
            }:
                return RegistryAuthError
            if code.startswith(("Forbidden", "NoPermission")):
                return RegistryAuthError
            if code.startswith("InvalidApprovalStatus"):
                return RegistryStateError
            if code.endswith(".NotFound"):
                return RegistryNotFoundError
            if code.startswith(("InvalidParameter", "MissingParameter", "InvalidApi")):
                return RegistryInvalidRequestError
        elif code.startswith("APIG.") and status in (401, 403):
            return RegistryAuthError
    if status in (401, 403):
        return RegistryAuthError
    if status == 404:
        return RegistryNotFoundError
    if status == 429:
        return RegistryThrottledError
    if status == 409:
        return RegistryStateError
    if status >= 500 or status == 408:
        return RegistryServerError
    return RegistryInvalidRequestError


def _too_deep(vendor: Vendor, response: httpx.Response) -> RegistryResponseError:
    return RegistryResponseError(
        field="body",
        problem="JSON nested too deeply to read",
        request_id=request_id_of(vendor, response, {}),
        status_code=response.status_code,
    )


def map_error(vendor: Vendor, response: httpx.Response, *, attempts: int = 1) -> RegistryAPIError:
    """Turn an error answer into the typed exception (vendor code first, HTTP status second).

    :raises RegistryResponseError: when the error body is JSON nested too deeply to read.
    """
    body = _json_or_none(response)
    if body is _TOO_DEEP:
        raise _too_deep(vendor, response)
    if vendor == "pai":
        code = message = None
        if isinstance(body, dict):
            raw_code = body.get("Code", body.get("code"))
            raw_msg = body.get("Message", body.get("message"))
            code = None if raw_code is None else str(raw_code)
            message = None if raw_msg is None else str(raw_msg)
    else:
        code, message = _find_huawei_error(body)
    if message is None:
        message = response.text[:200] if response.content else response.reason_phrase
    cls = _classify(vendor, response.status_code, code)
    return cls(
        status_code=response.status_code,
        code=code,
        message=message,
        request_id=request_id_of(vendor, response, body),
        attempts=attempts,
        # the same rule as the retry loop's: a throttling code (or Alibaba's x-acs-retry-after) on a 400 or 403
        # is retryable although the status alone would not be
        retryable=_is_retryable(vendor, response, code),
    )


def _is_retryable(vendor: Vendor, response: httpx.Response, code: str | None) -> bool:
    if response.status_code in _RETRY_STATUSES or response.status_code >= 500:
        return True
    if _is_throttle_code(code):  # whatever the status: the error is a RegistryThrottledError, retryable
        return True
    # Alibaba's SDK treats an x-acs-retry-after header on any 4xx/5xx answer as throttling
    return vendor == "pai" and response.status_code >= 400 and "x-acs-retry-after" in response.headers


def _positive(value: float) -> float | None:
    return value if value > 0 and math.isfinite(value) else None


def _server_delay(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait: ``x-acs-retry-after`` (ms) or ``Retry-After`` (seconds).

    Zero, negative, NaN, infinite or unreadable values count as no request (our own backoff applies)."""
    acs = response.headers.get("x-acs-retry-after")
    if acs is not None:
        try:
            return _positive(int(acs) / 1000.0)
        except ValueError:
            pass
    retry_after = response.headers.get("retry-after")
    if retry_after is not None:
        try:
            return _positive(float(retry_after))
        except ValueError:
            return None
    return None


def _response_failure(vendor: Vendor, response: httpx.Response, error: ModelRegistryError) -> Failure:
    code = error.code if isinstance(error, RegistryAPIError) else None
    rid = getattr(error, "request_id", None)
    cause = f"HTTP {response.status_code} {code or '-'} (request id {rid or '-'})"
    if not _is_retryable(vendor, response, code):
        return Failure(cause, retryable=False)
    return Failure(cause, retryable=True, server_delay=_server_delay(response))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        yield current
        current = current.__cause__ or current.__context__
        seen += 1


def _cert_failure(exc: BaseException) -> bool:
    """Whether a failed attempt was a certificate that did not verify."""
    return any(isinstance(link, ssl.SSLCertVerificationError) for link in _chain(exc))


def _exception_failure(exc: Exception, deadline_hit: bool, policy: RetryPolicy) -> tuple[Failure, bool]:
    """(failure, whether ``exc`` may be chained as the cause of the final error: its text carries no header)."""
    if isinstance(exc, httpx.LocalProtocolError):
        # h11 refused what we were about to send: a header value with a control character. Its message quotes the
        # value (the Authorization header, a token): never shown, never chained, never retried.
        return Failure("the request could not be sent: a header value is not valid HTTP", retryable=False), False
    if isinstance(exc, UnicodeEncodeError):
        return Failure("the request could not be sent: a header value is not ASCII", retryable=False), False
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Failure(f"UnsupportedProtocol: {one_line(exc, 200)}", retryable=False), True
    for link in _chain(exc):
        if isinstance(link, ssl.SSLCertVerificationError):
            reason = link.verify_message or link.reason or "verification failed"
            text = f"TLS certificate verification failed: {one_line(reason, 200)} (a private CA? set ca_bundle)"
            return Failure(text, retryable=False), True
    if deadline_hit:
        text = (
            f"deadline exceeded (attempt_timeout {policy.attempt_timeout:g} s, call_timeout {policy.call_timeout:g} s)"
        )
        return Failure(text, retryable=True), True
    detail = one_line(exc, 200)
    return Failure(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__, retryable=True), True


# ------------------------------------------------------------------------------------------------- parsing


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse_model(vendor: Vendor, response: httpx.Response, model: type[M], *, root: str = "body") -> M:
    """Validate a 2xx body into ``model``; anything unreadable becomes :class:`RegistryResponseError`."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        request_id = request_id_of(vendor, response, None if response.content else {})
        if first["type"] == "json_invalid" or not response.content:
            field, problem = root, "not valid JSON" + (" (empty body)" if not response.content else "")
            if "recursion limit" in str(first.get("msg", "")):
                problem = "JSON nested too deeply to read"
                request_id = request_id_of(vendor, response, {})
        else:
            field = _loc(first["loc"])
            field = f"{root}.{field}" if field != "body" else root
            problem = first["msg"]
        raise RegistryResponseError(
            field=field, problem=problem, request_id=request_id, status_code=response.status_code
        ) from None
