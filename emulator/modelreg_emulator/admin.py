"""The emulator's admin surface: change a version's status on demand and read the request log, over HTTP.

Not a vendor route: paths start with ``/_emulator/``, no signature is checked, and the request log does not count
them. Requests are served only from a loopback client address (127.0.0.0/8, ``::1``) and only with the header
``X-Modelreg-Admin: 1`` (a browser page cannot send it cross-origin without a preflight, which is never answered);
anything else is answered 403.

* ``GET /_emulator/requests`` — ``{"requests": [{"route", "authenticated", "count"}, ...]}`` (sorted by route).
* ``GET /_emulator/credentials`` — ``{"temporary_keys": [{"vendor", "key_id", "secret", "token", "issuer",
  "issued_at", "expires_at"}, ...]}``: every temporary key the credential services issued, secrets included (a
  loopback test harness uses them to scan logs and databases for leaks).
* ``PUT /_emulator/eas/services/{region}/{service_name}/{action}`` with ``fail`` (``{"reason", "message"}``: the
  service ``Failed`` with a Warning event), ``wait`` (``Waiting`` for resources until advanced), ``slow``
  (``{"seconds": 30}`` more for its next transition) or ``advance`` (finish the transition in flight now). Answers
  the service as DescribeService does.
* ``PUT /_emulator/pai/models/{model_id}/versions/{version_name}/status`` with ``{"status": "Approved",
  "force": false}`` — ``approve`` / ``reject`` change only a Pending version (as the registry does: Approved and
  Rejected are terminal; 409 otherwise); ``"force": true`` sets any status (``set-status``). Answers the version.
* ``PUT /_emulator/fabric-ep/instances/{workspace}/{instance_id}/{action}`` with ``fail`` (``{"error_code",
  "error_msg"}``: the instance FAILED), ``advance`` or ``slow`` (``{"seconds"}``) — :func:`.fabric_ep.fabric_ep_admin`.
* ``PUT /_emulator/fabric/fail-next-versions`` with ``{"count": 1}`` — the next ``count`` Fabric versions
  (CreateModelDefinition, UpdateModelDefinition) fail: listed with ``status`` FAILED, never current.

:func:`main` is the client side (``modelreg-emulator approve|reject|set-status|fail-next-version|requests --url URL``,
``modelreg-emulator eas fail|wait|slow|advance REGION SERVICE --url URL`` and
``modelreg-emulator fabric-ep fail|slow|advance WORKSPACE INSTANCE --url URL``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from modelreg_emulator.eas import eas_admin
from modelreg_emulator.fabric_ep import fabric_ep_admin
from modelreg_emulator.store import normalise_status
from modelreg_emulator.wire import Answer, ApiError, Req

if TYPE_CHECKING:
    from modelreg_emulator.app import Registry

__all__ = ["ADMIN_HEADER", "ADMIN_PREFIX", "COMMANDS", "handle_admin", "is_loopback", "main"]

ADMIN_PREFIX = "/_emulator/"
ADMIN_HEADER = "X-Modelreg-Admin"
COMMANDS = ("approve", "reject", "set-status", "fail-next-version", "requests", "eas", "fabric-ep")
URL_ENV = "MODELREG_EMULATOR_URL"
_JSON = {"content-type": "application/json"}


def is_loopback(host: str | None) -> bool:
    """True for a loopback IP address (``127.0.0.0/8``, ``::1``, an IPv4-mapped loopback)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def _answer(status: int, payload: Any) -> Answer:
    return Answer(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), dict(_JSON))


def _error(status: int, message: str) -> Answer:
    return _answer(status, {"error": message})


def handle_admin(registry: Registry, req: Req, client_host: str | None) -> Answer:
    """Answer one ``/_emulator/...`` request."""
    if not is_loopback(client_host):
        return _error(403, "the emulator's admin routes answer loopback clients only")
    if req.headers.get(ADMIN_HEADER) != "1":
        return _error(403, f"admin requests need the header {ADMIN_HEADER}: 1")
    parts = [unquote(p) for p in req.path[len(ADMIN_PREFIX) :].split("/")]
    if parts == ["requests"] and req.method == "GET":
        counts = Counter((e.route, e.authenticated) for e in registry.request_log.entries)
        rows = [{"route": r, "authenticated": a, "count": n} for (r, a), n in sorted(counts.items())]
        return _answer(200, {"requests": rows})
    if parts == ["credentials"] and req.method == "GET":
        with registry.store.lock:
            keys = [
                {
                    "vendor": k.vendor,
                    "key_id": k.key_id,
                    "secret": k.secret,
                    "token": k.token,
                    "issuer": k.issuer,
                    "issued_at": k.issued_at,
                    "expires_at": k.expires_at,
                }
                for k in registry.store.temporary_keys.values()
            ]
        return _answer(200, {"temporary_keys": keys})
    if (
        len(parts) == 6
        and parts[0] == "pai"
        and parts[1] == "models"
        and parts[3] == "versions"
        and parts[5] == "status"
        and req.method == "PUT"
    ):
        return _set_status(registry, parts[2], parts[4], req.body)
    if parts == ["fabric", "fail-next-versions"] and req.method == "PUT":
        return _fail_next(registry, req.body)
    if len(parts) == 5 and parts[:2] == ["eas", "services"] and req.method == "PUT":
        return _eas_action(registry, parts[2], parts[3], parts[4], req.body)
    if len(parts) == 5 and parts[:2] == ["fabric-ep", "instances"] and req.method == "PUT":
        return _fabric_ep_action(registry, parts[2], parts[3], parts[4], req.body)
    return _error(404, f"no admin route {req.method} {req.path}")


def _fabric_ep_action(registry: Registry, workspace: str, instance_id: str, action: str, body: bytes) -> Answer:
    """``PUT /_emulator/fabric-ep/instances/{workspace}/{id}/{fail|advance|slow}``
    (:func:`.fabric_ep.fabric_ep_admin`)."""
    request = _body_object(body, '{"error_code": "...", "error_msg": "..."}')
    if isinstance(request, Answer):
        return request
    try:
        return _answer(200, fabric_ep_admin(registry.store, action, workspace, instance_id, request))
    except ApiError as err:
        return _error(err.status, err.message)


def _eas_action(registry: Registry, region: str, name: str, action: str, body: bytes) -> Answer:
    """``PUT /_emulator/eas/services/{region}/{name}/{fail|wait|slow|advance}`` (:func:`.eas.eas_admin`)."""
    request = _body_object(body, '{"reason": "...", "message": "..."}')
    if isinstance(request, Answer):
        return request
    try:
        return _answer(200, eas_admin(registry.store, action, region, name, request))
    except ApiError as err:
        return _error(err.status, err.message)


def _body_object(body: bytes, example: str) -> dict[str, Any] | Answer:
    """The JSON object of an admin request's body, or the 400 answer."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return _error(400, f"the body must be JSON: {example}")
    if not isinstance(request, dict):
        return _error(400, "the body must be a JSON object")
    return request


def _set_status(registry: Registry, model_id: str, version_name: str, body: bytes) -> Answer:
    request = _body_object(body, '{"status": "Approved", "force": false}')
    if isinstance(request, Answer):
        return request
    status = normalise_status(request.get("status"))
    if status is None:
        return _error(400, "status must be one of Pending, Approved, Rejected")
    force = request.get("force", False) is True
    store = registry.store
    store.tick()
    with store.lock:
        model = store.pai_models.get(model_id)
        if model is None:
            return _error(404, f"no PAI model {model_id!r} (models: {', '.join(sorted(store.pai_models)) or 'none'})")
        version = model.by_name.get(version_name)
        if version is None:
            return _error(404, f"model {model_id!r} has no version {version_name!r}")
        current = version.data.get("ApprovalStatus")
        if not force and current != "Pending":
            return _error(409, f"{model_id} {version_name} is {current} (terminal); use set-status to force a change")
        store.set_approval(model_id, version_name, status)
    return _answer(200, store.get_pai_version(model_id, version_name))


def _fail_next(registry: Registry, body: bytes) -> Answer:
    try:
        count = json.loads(body or b"{}").get("count", 1)
    except (ValueError, AttributeError):
        return _error(400, 'the body must be JSON: {"count": 1}')
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 1000:
        return _error(400, "count must be an integer from 0 to 1000")
    registry.store.fail_next_fabric_versions(count)
    return _answer(200, {"fail_next_versions": count})


# ------------------------------------------------------------------------------------------------- client


def build_admin_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelreg-emulator",
        description="Control a running emulator (loopback only): change a PAI version's status, read the request log.",
    )
    url_help = f"the emulator's URL, as printed when it started (default: ${URL_ENV})"
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("approve", "Pending -> Approved"), ("reject", "Pending -> Rejected")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("model_id")
        cmd.add_argument("version_name")
        cmd.add_argument("--url", default=os.environ.get(URL_ENV), help=url_help)
    cmd = sub.add_parser("set-status", help="set any status (Approved and Rejected included: a forced change)")
    cmd.add_argument("model_id")
    cmd.add_argument("version_name")
    cmd.add_argument("status", help="Pending, Approved or Rejected")
    cmd.add_argument("--url", default=os.environ.get(URL_ENV), help=url_help)
    cmd = sub.add_parser("fail-next-version", help="make the next Fabric version(s) fail")
    cmd.add_argument("--count", type=int, default=1, help="how many next versions fail (default 1)")
    cmd = sub.add_parser("eas", help="PAI-EAS: fail a service, hold it Waiting, slow it down, or advance it")
    cmd.add_argument("action", choices=("fail", "wait", "slow", "advance"))
    cmd.add_argument("region")
    cmd.add_argument("service_name")
    cmd.add_argument("--reason", help="fail: the Reason (default ContainerCrashLoop)")
    cmd.add_argument("--message", help="fail, wait: the Message of the Warning event")
    cmd.add_argument("--seconds", type=float, help="slow: seconds more for the next transition (default 30)")
    cmd.add_argument("--url", default=os.environ.get(URL_ENV), help=url_help)
    cmd = sub.add_parser("fabric-ep", help="Fabric EP: fail an instance, slow it down, or advance it")
    cmd.add_argument("action", choices=("fail", "slow", "advance"))
    cmd.add_argument("workspace_id")
    cmd.add_argument("instance_id")
    cmd.add_argument("--error-code", help="fail: the error_code (default DataArtsFabricEp.5001)")
    cmd.add_argument("--error-msg", help="fail: the error_msg")
    cmd.add_argument("--seconds", type=float, help="slow: seconds more for the next transition (default 30)")
    cmd.add_argument("--url", default=os.environ.get(URL_ENV), help=url_help)
    cmd = sub.add_parser("requests", help="the request log: route, authenticated, count")
    cmd.add_argument("--url", default=os.environ.get(URL_ENV), help=url_help)
    cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: Sequence[str]) -> int:
    """``modelreg-emulator approve|reject|set-status|requests|eas ...``; returns the exit status."""
    import httpx

    args = build_admin_parser().parse_args(argv)
    if not args.url:
        print(f"modelreg-emulator {args.command}: give --url (or set {URL_ENV})", file=sys.stderr)
        return 2
    base = args.url.rstrip("/")
    headers = {ADMIN_HEADER: "1"}
    try:
        if args.command == "requests":
            answer = httpx.get(f"{base}{ADMIN_PREFIX}requests", headers=headers, timeout=10, trust_env=False)
        elif args.command == "fail-next-version":
            path = f"{base}{ADMIN_PREFIX}fabric/fail-next-versions"
            answer = httpx.put(path, json={"count": args.count}, headers=headers, timeout=10, trust_env=False)
        elif args.command == "eas":
            given = {"reason": args.reason, "message": args.message, "seconds": args.seconds}
            path = f"{ADMIN_PREFIX}eas/services/{quote(args.region, safe='')}/{quote(args.service_name, safe='')}"
            body = {key: value for key, value in given.items() if value is not None}
            answer = httpx.put(f"{base}{path}/{args.action}", json=body, headers=headers, timeout=10, trust_env=False)
        elif args.command == "fabric-ep":
            given = {"error_code": args.error_code, "error_msg": args.error_msg, "seconds": args.seconds}
            path = f"{ADMIN_PREFIX}fabric-ep/instances/{quote(args.workspace_id, safe='')}/"
            path += f"{quote(args.instance_id, safe='')}/{args.action}"
            body = {key: value for key, value in given.items() if value is not None}
            answer = httpx.put(f"{base}{path}", json=body, headers=headers, timeout=10, trust_env=False)
        else:
            status = {"approve": "Approved", "reject": "Rejected"}.get(args.command, getattr(args, "status", ""))
            model, version = quote(args.model_id, safe=""), quote(args.version_name, safe="")
            path = f"{ADMIN_PREFIX}pai/models/{model}/versions/{version}/status"
            body = {"status": status, "force": args.command == "set-status"}
            answer = httpx.put(f"{base}{path}", json=body, headers=headers, timeout=10, trust_env=False)
    except httpx.HTTPError as exc:
        print(f"modelreg-emulator {args.command}: cannot reach {base}: {exc}", file=sys.stderr)
        return 1
    try:
        payload = answer.json()
    except ValueError:
        payload = {"error": answer.text[:200]}
    if answer.status_code != 200:
        print(f"modelreg-emulator {args.command}: HTTP {answer.status_code}: {payload.get('error')}", file=sys.stderr)
        return 1
    if args.command == "requests":
        if args.json:
            print(json.dumps(payload["requests"]))
        else:
            print(f"{'route':<28} {'authenticated':<14} count")
            for row in payload["requests"]:
                print(f"{row['route']:<28} {('yes' if row['authenticated'] else 'no'):<14} {row['count']}")
        return 0
    if args.command == "fail-next-version":
        print(f"the next {payload['fail_next_versions']} Fabric version(s) fail")
        return 0
    if args.command == "eas":
        print(f"{payload['ServiceName']}: {payload['Status']} (version {payload['CurrentVersion']})")
        return 0
    if args.command == "fabric-ep":
        print(f"{payload['id']}: {payload['status']} (version {payload['source']['version_id']})")
        return 0
    print(f"{payload['VersionName']}: {payload['ApprovalStatus']}")
    return 0
