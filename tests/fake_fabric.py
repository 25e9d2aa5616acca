"""A small DataArts Fabric registry of the suite's own that answers whatever a test puts in it, lies included.

Unlike the emulator it checks no signature and keeps versions as raw wire dicts, in whatever order the test lists
them (the server's order is not the provider's), so a test can serve a version without ``create_time``, a version
that never lists, or throttle every read (``429`` with Huawei's API gateway body).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class FakeFabric:
    def __init__(self) -> None:
        self.versions: dict[str, list[dict[str, Any]]] = {}  # model id -> versions, served in this order
        self.current: dict[str, str | None] = {}  # model id -> current version id
        self.requests: list[str] = []  # operation of each request answered
        self.throttle = 0  # how many of the next requests answer 429
        self.lock = threading.Lock()
        self.url = ""

    def count(self, operation: str | None = None) -> int:
        with self.lock:
            return sum(1 for op in self.requests if operation is None or op == operation)

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        parts = [unquote(p) for p in path.split("/")]
        # /v1/workspaces/{ws}/models[/{model}/versions]
        operation = "ListModelVersions" if parts[-1] == "versions" else "ListModels"
        with self.lock:
            self.requests.append(operation)
            if self.throttle > 0:
                self.throttle -= 1
                return 429, {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached"}
            if operation == "ListModels":
                model_id = query.get("id", [""])[0]
                if model_id not in self.versions:
                    return 200, {"total": 0, "models": []}
                current_id = self.current.get(model_id)
                current = next((v for v in self.versions[model_id] if v.get("id") == current_id), None)
                model = {"id": model_id, "name": model_id, "current_version": current}
                return 200, {"total": 1, "models": [model]}
            model_id = parts[5]
            if model_id not in self.versions:
                return 404, {"error_code": "common.01000001", "error_msg": f"model {model_id} not found"}
            versions = [dict(v) for v in self.versions[model_id]]
        offset, limit = int(query.get("offset", ["0"])[0]), int(query.get("limit", ["10"])[0])
        return 200, {"total": len(versions), "versions": versions[offset : offset + limit]}


@contextmanager
def fake_fabric_server() -> Iterator[FakeFabric]:
    fake = FakeFabric()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            status, body = fake.answer(url.path, parse_qs(url.query))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Request-Id", "req-fake")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
