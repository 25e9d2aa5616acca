"""PaiEasHook on the wire (issue 22): every operation byte for byte against the official SDK
(``alibabacloud-eas20210701`` 7.0.0), and hostile answers.

Both clients call one recording HTTP server on 127.0.0.1. The clock, the nonce and the User-Agent are pinned on both
sides (the SDK's ``Utils.get_timestamp``/``get_nonce``/``get_user_agent``, our signer's defaults) and the SDK's
telemetry header ``x-acs-credentials-provider`` is off, so the whole request must be equal: method, path, query
(``Labels``/``Label`` JSON included), every signed header with its value, the ``Authorization`` header (its
signature covers all of them) and the body. Specs are random (hypothesis): service names, labels with spaces,
``+``, ``*``, ``%``, ``&``, ``=``, quotes and non-ASCII text, service JSON.
"""

from __future__ import annotations

import asyncio
import http.server
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from helpers import PAI_KEY, PAI_SECRET, background_server, pai_conn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_modelreg import auth
from airflow_provider_modelreg.errors import (
    RegistryConnectionConfigError,
    RegistryNotFoundError,
    RegistryResponseError,
    RegistryServerError,
    RegistryThrottledError,
)
from airflow_provider_modelreg.hooks.eas import EAS_MAPPED_REGIONS, PaiEasHook, eas_host
from airflow_provider_modelreg.transport import RetryPolicy
from airflow_provider_modelreg.transport.client import USER_AGENT

REGION = "cn-hangzhou"
MOMENT = datetime(2026, 12, 6, 10, 11, 12, tzinfo=timezone.utc)
NONCE = "eas-wire-nonce-0001"
#: a body every answer model accepts (unknown fields are kept)
ANY_ANSWER = {
    "RequestId": "req-1",
    "ServiceName": "svc",
    "Status": "Running",
    "TotalCount": 0,
    "Services": [],
    "Versions": [],
    "Events": [],
}
UNSIGNED = {"connection", "accept-encoding", "content-length", "authorization"}


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []
    #: answers to give, in order (status, body, headers); empty: 200 with ANY_ANSWER
    script: list[tuple[int, bytes, dict[str, str]]] = []
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Recorder.seen.append(
            {
                "method": self.command,
                "target": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        status, answer, headers = (
            Recorder.script.pop(0) if Recorder.script else (200, json.dumps(ANY_ANSWER).encode(), {})
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    # one server per test: a request a test's client left in flight (pages read concurrently, abandoned when one
    # answer was refused) must not reach the next test's server and take an answer from its script
    Recorder.seen, Recorder.script = [], []
    with background_server(Recorder) as srv:
        yield srv


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch, server: http.server.ThreadingHTTPServer) -> int:
    """Pin the clock, nonce and User-Agent of both clients; a connection to the recorder; the port."""
    from alibabacloud_tea_openapi.utils import Utils

    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: MOMENT.strftime("%Y-%m-%dT%H:%M:%SZ")))
    monkeypatch.setattr(Utils, "get_nonce", staticmethod(lambda: NONCE))
    monkeypatch.setattr(Utils, "get_user_agent", staticmethod(lambda user_agent=None: USER_AGENT))
    monkeypatch.setattr(auth, "_utcnow", lambda: MOMENT)
    monkeypatch.setattr(auth, "_uuid_nonce", lambda: NONCE)
    url = f"http://127.0.0.1:{server.server_port}"
    pai_conn(monkeypatch, url, region=REGION, eas_endpoint=url)
    Recorder.script.clear()
    return server.server_port


def sdk(port: int) -> Any:
    from alibabacloud_eas20210701.client import Client
    from alibabacloud_tea_openapi.models import Config

    client = Client(
        Config(access_key_id=PAI_KEY, access_key_secret=PAI_SECRET, endpoint=f"127.0.0.1:{port}", protocol="http")
    )
    # The credentials library names the provider of the key in x-acs-credentials-provider (``static_ak``):
    # telemetry of the SDK's own credential chain, not part of the API, and not sent by us. Off on the SDK side.
    credential = client._credential
    original = credential.get_credential

    def without_provider_name() -> Any:
        model = original()
        model.provider_name = None
        return model

    credential.get_credential = without_provider_name
    return client


def one_request(call: Callable[[], Any]) -> dict[str, Any]:
    Recorder.seen.clear()
    call()
    assert len(Recorder.seen) == 1, Recorder.seen
    return Recorder.seen[0]


def signed_part(request: dict[str, Any]) -> dict[str, Any]:
    """Everything the comparison covers: the signed headers named in Authorization, with their values."""
    authorization = request["headers"]["authorization"]
    names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert set(request["headers"]) - UNSIGNED <= set(names), "an unsigned header would go out"
    return {
        "method": request["method"],
        "target": request["target"],
        "signed": {name: request["headers"][name] for name in names},
        "authorization": authorization,
        "body": request["body"],
    }


def assert_same(ours: Callable[[], Any], theirs: Callable[[], Any]) -> dict[str, Any]:
    expected = signed_part(one_request(theirs))
    got = signed_part(one_request(ours))
    assert got == expected
    return got


def models() -> Any:
    from alibabacloud_eas20210701 import models as eas_models

    return eas_models


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------------------------------------ strategies

SPECIAL = " +*~%&=/?#'\"!()é中版本\U0001f600"
texts = st.text(
    alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters(exclude_categories=["Cc", "Cs"])),
    min_size=1,
    max_size=12,
).filter(lambda t: t.strip() and t not in {"None", "none", "null", "NULL", "undefined"})
names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
labels = st.dictionaries(texts, texts, min_size=1, max_size=4)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
configs = st.dictionaries(texts, json_values, min_size=1, max_size=4)
WIRE = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------------------------ byte equality


@WIRE
@given(
    name=names,
    config=configs,
    label_map=st.none() | labels,
    workspace=st.none() | st.from_regex(r"[0-9]{1,8}", fullmatch=True),
    develop=st.none() | st.booleans(),
)
def test_create_service(
    pinned: int, name: str, config: dict[str, Any], label_map: Any, workspace: Any, develop: Any
) -> None:
    service = {**config, "name": name}
    request = models().CreateServiceRequest(
        body=compact(service),
        labels=label_map,
        workspace_id=workspace or "ws-pai",  # none given: the connection's workspace_id extra
        develop=None if develop is None else ("true" if develop else "false"),
    )
    hook = PaiEasHook()
    got = assert_same(
        lambda: hook.create_service(service, labels=label_map, workspace_id=workspace, develop=develop),
        lambda: sdk(pinned).create_service(request),
    )
    assert got["target"].startswith("/api/v2/services")
    if label_map is not None:
        assert "Labels=" in got["target"]


def test_create_service_takes_the_connections_workspace(pinned: int, monkeypatch: pytest.MonkeyPatch) -> None:
    request = models().CreateServiceRequest(body=compact({"name": "svc"}), labels={"a": "b"}, workspace_id="ws-pai")
    assert_same(
        lambda: PaiEasHook().create_service({"name": "svc"}, labels={"a": "b"}),
        lambda: sdk(pinned).create_service(request),
    )


@WIRE
@given(name=names, config=configs, update_type=st.sampled_from(["merge", "replace"]))
def test_update_service(pinned: int, name: str, config: dict[str, Any], update_type: str) -> None:
    request = models().UpdateServiceRequest(update_type=update_type, body=compact(config))
    assert_same(
        lambda: PaiEasHook().update_service(name, config, update_type=update_type),  # type: ignore[arg-type]
        lambda: sdk(pinned).update_service(REGION, name, request),
    )


@WIRE
@given(name=names, version=st.integers(1, 2**31 - 1))
def test_update_service_version(pinned: int, name: str, version: int) -> None:
    request = models().UpdateServiceVersionRequest(version=version)
    assert_same(
        lambda: PaiEasHook().update_service_version(name, version),
        lambda: sdk(pinned).update_service_version(REGION, name, request),
    )


@WIRE
@given(
    name=names,
    state=st.none() | st.sampled_from(["standalone", "grouping"]),
    weight=st.none() | st.integers(-1, 1000),
)
def test_release_service(pinned: int, name: str, state: Any, weight: Any) -> None:
    if state is None and weight is None:
        weight = 0
    request = models().ReleaseServiceRequest(traffic_state=state, weight=weight)
    assert_same(
        lambda: PaiEasHook().release_service(name, traffic_state=state, weight=weight),
        lambda: sdk(pinned).release_service(REGION, name, request),
    )


@WIRE
@given(name=names, lock=st.sampled_from(["all", "dangerous", "none"]))
def test_update_service_safety_lock(pinned: int, name: str, lock: str) -> None:
    request = models().UpdateServiceSafetyLockRequest(lock=lock)
    got = assert_same(
        lambda: PaiEasHook().update_service_safety_lock(name, lock),  # type: ignore[arg-type]
        lambda: sdk(pinned).update_service_safety_lock(REGION, name, request),
    )
    assert got["target"] == f"/api/v2/services/{REGION}/{name}/lock" and json.loads(got["body"]) == {"Lock": lock}


@WIRE
@given(name=names)
def test_describe_and_delete_service(pinned: int, name: str) -> None:
    hook = PaiEasHook()
    got = assert_same(lambda: hook.describe_service(name), lambda: sdk(pinned).describe_service(REGION, name))
    assert got["target"] == f"/api/v2/services/{REGION}/{name}" and got["body"] == b""
    got = assert_same(lambda: hook.delete_service(name), lambda: sdk(pinned).delete_service(REGION, name))
    assert got["method"] == "DELETE"


@WIRE
@given(
    name=names,
    event_type=st.none() | st.sampled_from(["Normal", "Warning"]),
    instance=st.none() | texts,
    page=st.integers(0, 5),
    size=st.integers(1, 100),
)
def test_describe_service_event(pinned: int, name: str, event_type: Any, instance: Any, page: int, size: int) -> None:
    request = models().DescribeServiceEventRequest(
        event_type=event_type, instance_name=instance, page_num=str(page + 1), page_size=str(size)
    )
    assert_same(
        lambda: PaiEasHook().describe_service_events(
            name, event_type=event_type, instance_name=instance, page=page, page_size=size
        ),
        lambda: sdk(pinned).describe_service_event(REGION, name, request),
    )


@WIRE
@given(
    label_map=st.none() | labels,
    group=st.none() | texts,
    status=st.none() | st.sampled_from(["Running", "Waiting", "Failed"]),
    order=st.none() | st.sampled_from(["asc", "desc"]),
    name_filter=st.none() | texts,
    size=st.integers(1, 100),
)
def test_list_services(
    pinned: int, label_map: Any, group: Any, status: Any, order: Any, name_filter: Any, size: int
) -> None:
    request = models().ListServicesRequest(
        label=label_map,
        group_name=group,
        service_status=status,
        order=order,
        filter=name_filter,
        page_number=1,
        page_size=size,
    )
    assert_same(
        lambda: PaiEasHook().list_services(
            label=label_map, group_name=group, status=status, order=order, name_filter=name_filter, page_size=size
        ),
        lambda: sdk(pinned).list_services(request),
    )


@WIRE
@given(name=names, size=st.integers(1, 100))
def test_list_service_versions(pinned: int, name: str, size: int) -> None:
    request = models().ListServiceVersionsRequest(page_number=1, page_size=size)
    assert_same(
        lambda: PaiEasHook().list_service_versions(name, page_size=size),
        lambda: sdk(pinned).list_service_versions(REGION, name, request),
    )


def test_the_async_twins_send_the_same_bytes(pinned: int) -> None:
    hook = PaiEasHook()

    async def both() -> None:
        for sync, twin in (
            (lambda: hook.describe_service("svc"), hook.adescribe_service("svc")),
            (lambda: hook.list_services(label={"m": "1"}), hook.alist_services(label={"m": "1"})),
            (lambda: hook.release_service("svc", weight=50), hook.arelease_service("svc", weight=50)),
            (lambda: hook.update_service_safety_lock("svc", "all"), hook.aupdate_service_safety_lock("svc", "all")),
            (lambda: hook.create_service({"name": "svc"}), hook.acreate_service({"name": "svc"})),
        ):
            expected = signed_part(one_request(sync))
            Recorder.seen.clear()
            await twin
            assert [signed_part(r) for r in Recorder.seen] == [expected]
        await hook.aclose()

    asyncio.run(both())


# ------------------------------------------------------------------------------------------------ hosts


@pytest.mark.parametrize(
    ("region", "network"),
    [(r, None) for r in sorted(EAS_MAPPED_REGIONS)]
    + [("cn-hangzhou", "vpc"), ("cn-wulanchabu", None), ("cn-wulanchabu", "vpc"), ("me-central-1", "public")],
)
def test_the_host_rule_is_the_sdks(region: str, network: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from alibabacloud_eas20210701.client import Client
    from alibabacloud_tea_openapi.models import Config

    client = Client(Config(access_key_id=PAI_KEY, access_key_secret=PAI_SECRET, region_id=region, network=network))
    assert eas_host(region, network) == client._endpoint
    extra = {"region": region, **({"network": network} if network else {})}
    conn = {"conn_type": "pai", "login": PAI_KEY, "password": PAI_SECRET, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_PAI_DEFAULT", json.dumps(conn))
    hook = PaiEasHook()
    assert hook.transport.base_url == f"https://{client._endpoint}"
    assert hook.transport.headers["x-acs-version"] == "2021-07-01" and hook.cluster_id == region


def test_the_region_comes_from_the_eas_host_or_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    pai_conn(monkeypatch, "http://127.0.0.1:9", region=None, eas_endpoint="https://eas-vpc.cn-wulanchabu.aliyuncs.com")
    assert PaiEasHook().cluster_id == "cn-wulanchabu"
    pai_conn(monkeypatch, "http://127.0.0.1:9", region=None, eas_endpoint="http://127.0.0.1:9")
    with pytest.raises(RegistryConnectionConfigError) as err:
        PaiEasHook().describe_service("svc")
    assert err.value.field == "region"
    pai_conn(monkeypatch, "http://127.0.0.1:9", eas_endpoint="http://10.0.0.1:80")
    with pytest.raises(RegistryConnectionConfigError) as err:
        PaiEasHook().describe_service("svc")
    assert err.value.field == "eas_endpoint"  # plain http only to a loopback host: TLS cannot be turned off


# ------------------------------------------------------------------------------------------------ hostile answers

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001, min_delay=0.001)


def answer(status: int, body: Any, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return status, raw, headers


def _service(**fields: Any) -> dict[str, Any]:
    return {"ServiceName": "svc", "Status": "Running", "RequestId": "r", **fields}


@pytest.mark.parametrize(
    "body",
    [
        _service(Status="Sleeping"),
        _service(Status=""),
        {"Status": "Running"},
        _service(RunningInstance="1"),
        b"{not json",
        b"",
        b"[]",
    ],
)
def test_an_unreadable_service_is_a_typed_error_never_a_success(pinned: int, body: Any) -> None:
    Recorder.script[:] = [answer(200, body)]
    Recorder.seen.clear()
    with pytest.raises(RegistryResponseError) as err:
        PaiEasHook(retry=FAST).describe_service("svc")
    assert not err.value.retryable and len(Recorder.seen) == 1


def test_throttling_then_an_answer(pinned: int) -> None:
    throttled = {"Code": "Throttling.User", "Message": "flow control", "RequestId": "t"}
    Recorder.script[:] = [answer(429, throttled, **{"x-acs-retry-after": "1"}), answer(200, _service())]
    Recorder.seen.clear()
    assert PaiEasHook(retry=FAST).describe_service("svc").status.value == "Running"
    assert len(Recorder.seen) == 2
    Recorder.script[:] = [answer(429, throttled)] * 3
    with pytest.raises(RegistryThrottledError):
        PaiEasHook(retry=FAST).describe_service("svc")


def test_server_errors(pinned: int) -> None:
    unavailable = {"Code": "ServiceUnavailable", "Message": "try later", "RequestId": "u"}
    Recorder.script[:] = [answer(503, unavailable), answer(502, b"<html>bad gateway</html>"), answer(200, _service())]
    Recorder.seen.clear()
    assert PaiEasHook(retry=FAST).describe_service("svc").service_name == "svc"
    assert len(Recorder.seen) == 3
    # a create is never repeated: one request, then the error
    Recorder.script[:] = [answer(503, unavailable)]
    Recorder.seen.clear()
    with pytest.raises(RegistryServerError):
        PaiEasHook(retry=FAST).create_service({"name": "svc"})
    assert len(Recorder.seen) == 1
    # an update neither
    Recorder.script[:] = [answer(500, unavailable)]
    Recorder.seen.clear()
    with pytest.raises(RegistryServerError):
        PaiEasHook(retry=FAST).update_service("svc", {"metadata": {"instance": 2}})
    assert len(Recorder.seen) == 1


def test_a_missing_service(pinned: int) -> None:
    Recorder.script[:] = [answer(404, {"Code": "InvalidService.NotFound", "Message": "no svc", "RequestId": "n"})]
    with pytest.raises(RegistryNotFoundError):
        PaiEasHook(retry=FAST).describe_service("svc")


def test_a_listing_whose_total_lies_is_refused(pinned: int) -> None:
    # page 1 holds one service of the 5 announced; pages 2-5 (read concurrently, so all alike) hold none
    page = {"TotalCount": 5, "Services": [_service()], "RequestId": "p"}
    empty = {"TotalCount": 5, "Services": [], "RequestId": "q"}
    Recorder.script[:] = [answer(200, page)] + [answer(200, empty)] * 4
    with pytest.raises(RegistryResponseError):
        PaiEasHook(retry=FAST).list_services(page_size=1, label={"a": "b"})


def test_the_access_token_is_masked_and_never_returned(pinned: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.providers.common.compat.sdk as compat_sdk  # where the package imports mask_secret from

    masked: list[str] = []
    monkeypatch.setattr(compat_sdk, "mask_secret", lambda value, name=None: masked.append(value))
    token, config_token = "eas-access-token-SECRET", "config-token-SECRET"
    service = _service(AccessToken=token, ServiceConfig=json.dumps({"name": "svc", "token": config_token}))
    Recorder.script[:] = [
        answer(200, service),
        answer(200, {"TotalCount": 1, "Services": [service], "RequestId": "l"}),
    ]
    hook = PaiEasHook(retry=FAST)
    described = hook.describe_service("svc")
    listed = hook.list_services()
    assert token in masked and config_token in masked
    for result in (described, listed[0]):
        for text in (repr(result), json.dumps(result.to_output()), json.dumps(result.to_wire())):
            assert token not in text and config_token not in text
