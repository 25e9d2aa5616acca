"""A small PAI registry of the suite's own that answers whatever a test puts in it, lies included.

Unlike the emulator it checks no signature and keeps versions as raw wire dicts, so a test can serve a version
without ``GmtCreateTime``, an unknown ``ApprovalStatus``, an Approved version without ``Uri``, or a
GetModelVersion answer about another version.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class FakePai:
    def __init__(self) -> None:
        self.models: dict[str, list[dict[str, Any]]] = {}
        self.get_override: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (action, path) of each request answered (or being answered)
        self.times: list[float] = []  # time.monotonic() of each entry in ``requests``, in the same order
        self.statuses: list[int] = []  # the HTTP status of each answer sent, in the order sent
        self.arrived = 0  # requests received, hung ones included (``requests`` holds them once ``hang`` clears)
        self.lock = threading.Lock()
        self.url = ""
        self.hang = threading.Event()  # set: every request waits until it is cleared (a silent server)
        self.accepted_key: str | None = None  # set: other AccessKey IDs are refused (a rotated credential)
        self.fail_with: tuple[int, str] | None = None  # set: every request gets this (status, code)
        self.throttled: set[str] = set()  # models whose reads answer 429 Throttling with Retry-After
        self.retry_after = 1  # seconds, sent with each 429
        self.workspaces: dict[str, str] = {}  # model -> WorkspaceId answered by GetModel (default "ws-fake")
        self.fail_next: dict[str, int] = {}  # action -> how many of its next requests answer 503 ServiceUnavailable

    def version(self, model: str, name: str) -> dict[str, Any]:
        return next(v for v in self.models[model] if v.get("VersionName") == name)

    def set_status(self, model: str, name: str, status: str) -> None:
        with self.lock:
            self.version(model, name)["ApprovalStatus"] = status

    def count(self, action: str | None = None) -> int:
        return sum(1 for a, _ in self.requests if action is None or a == action)

    def answer(self, action: str, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        parts = [unquote(p) for p in path.split("/")]
        # /api/v1/models/{model}/versions[/{version}]
        model = parts[4] if len(parts) > 4 else ""
        with self.lock:
            if model not in self.models:
                return 404, {"Code": "InvalidModel.NotFound", "Message": f"The model {model} does not exist."}
            if action == "GetModel":
                return 200, {"ModelId": model, "ModelName": model, "WorkspaceId": self.workspaces.get(model, "ws-fake")}
            versions = [dict(v) for v in self.models[model]]
            if action == "GetModelVersion":
                name = parts[6]
                if (model, name) in self.get_override:
                    return 200, dict(self.get_override[(model, name)])
                found = [v for v in versions if v.get("VersionName") == name]
                if not found:
                    return 404, {"Code": "InvalidModelVersion.NotFound", "Message": f"The version {name} ..."}
                return 200, found[0]
        status = query.get("ApprovalStatus", [None])[0]
        if status is not None:
            versions = [v for v in versions if v.get("ApprovalStatus") == status]
        label = query.get("Label", [""])[0].lower()
        if label:  # as PAI: a case-insensitive substring of a label key or value
            versions = [
                v
                for v in versions
                if any(
                    label in str(lb.get(part, "")).lower() for lb in v.get("Labels") or [] for part in ("Key", "Value")
                )
            ]
        versions.sort(key=lambda v: str(v.get("GmtCreateTime", "")), reverse=query.get("Order") == ["DESC"])
        number, size = int(query["PageNumber"][0]), int(query["PageSize"][0])
        page = versions[(number - 1) * size : number * size]
        return 200, {"Versions": page, "TotalCount": len(versions)}


@contextmanager
def fake_pai_server() -> Iterator[FakePai]:
    fake = FakePai()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with fake.lock:
                fake.arrived += 1
            while fake.hang.is_set():
                time.sleep(0.05)
            url = urlsplit(self.path)
            action = self.headers.get("x-acs-action", "")
            with fake.lock:
                fake.requests.append((action, self.path))
                fake.times.append(time.monotonic())
            authorization = self.headers.get("Authorization", "")
            if fake.accepted_key is not None and f"Credential={fake.accepted_key}," not in authorization:
                status, body = (
                    403,
                    {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found."},
                )
            elif any(f"/models/{m}/" in url.path for m in fake.throttled):
                status, body = 429, {"Code": "Throttling.User", "Message": "slow down"}
            elif fake.fail_next.get(action, 0) > 0:
                fake.fail_next[action] -= 1
                status, body = 503, {"Code": "ServiceUnavailable", "Message": "injected once"}
            elif fake.fail_with is not None:
                status, body = fake.fail_with[0], {"Code": fake.fail_with[1], "Message": "injected"}
            else:
                status, body = fake.answer(action, url.path, parse_qs(url.query))
            with fake.lock:
                fake.statuses.append(status)
            body.setdefault("RequestId", f"req-{len(fake.requests)}")
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status == 429:
                self.send_header("Retry-After", str(fake.retry_after))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    # a short poll interval: shutdown() waits for it, and every test using the fake stops a server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.hang.clear()
        server.shutdown()
        server.server_close()
