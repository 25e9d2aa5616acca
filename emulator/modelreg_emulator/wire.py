"""Request/answer value types and the two vendors' error bodies (emulator internals)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Answer", "ApiError", "Req", "ali_error", "ali_ok", "dumps_object", "hw_error", "hw_ok", "raw_json"]

_JSON = "application/json;charset=utf-8"
_HOST_ID = "aiworkspace.emulator.local"


class raw_json(str):
    """A string that is already JSON and is spliced into an answer unchanged (cached version encodings)."""

    __slots__ = ()


@dataclass
class Req:
    """One request as the handlers see it. ``path`` is the raw (still percent-encoded) path."""

    method: str
    path: str
    query: str
    headers: Any  # starlette.datastructures.Headers (case-insensitive, multi-valued)
    body: bytes
    client: str | None = None  # the client's IP address (the admin routes answer loopback clients only)

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass
class Answer:
    """What to send back."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    authenticated: bool = False


class ApiError(Exception):
    """An error answer; the vendor decides the body shape."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def dumps_object(payload: Mapping[str, Any]) -> str:
    """Compact JSON of a flat mapping whose :class:`raw_json` values are spliced in unchanged."""
    parts = []
    for key, value in payload.items():
        encoded = value if isinstance(value, raw_json) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        parts.append(f"{json.dumps(key)}:{encoded}")
    return "{" + ",".join(parts) + "}"


def _dump(payload: Mapping[str, Any]) -> bytes:
    return dumps_object(payload).encode("utf-8")


def ali_request_id() -> str:
    return str(uuid.uuid4()).upper()


def hw_request_id() -> str:
    return uuid.uuid4().hex


def ali_ok(payload: Mapping[str, Any], *, status: int = 200) -> Answer:
    """A PAI success answer; ``RequestId`` first, as the service does."""
    request_id = ali_request_id()
    body = _dump({"RequestId": request_id, **payload})
    return Answer(status, body, {"content-type": _JSON, "x-acs-request-id": request_id})


def ali_error(err: ApiError) -> Answer:
    """A PAI error answer ``{RequestId, HostId, Code, Message, Recommend}``."""
    request_id = ali_request_id()
    body = {
        "RequestId": request_id,
        "HostId": _HOST_ID,
        "Code": err.code,
        "Message": err.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product=AIWorkSpace&requestId={request_id}",
    }
    return Answer(err.status, _dump(body), {"content-type": _JSON, "x-acs-request-id": request_id, **err.headers})


def hw_ok(payload: Mapping[str, Any], *, status: int = 200, headers: Mapping[str, str] | None = None) -> Answer:
    """A Huawei success answer (always with ``X-Request-Id``)."""
    return Answer(status, _dump(payload), {"content-type": _JSON, "X-Request-Id": hw_request_id(), **(headers or {})})


def hw_error(err: ApiError) -> Answer:
    """A Huawei error answer ``{error_code, error_msg}`` with ``X-Request-Id``."""
    body = {"error_code": err.code, "error_msg": err.message}
    return Answer(err.status, _dump(body), {"content-type": _JSON, "X-Request-Id": hw_request_id(), **err.headers})
