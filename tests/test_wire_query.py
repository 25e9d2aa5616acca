"""PAI query strings on the wire, byte for byte against the official SDK (``alibabacloud-aiworkspace20210204``).

Both clients call one tiny HTTP server on 127.0.0.1 that records the request target; the SDK's target is the
oracle. Values carry spaces, ``+``, ``*``, ``~``, ``%``, ``&``, ``=``, ``/``, quotes and non-ASCII text. (The SDK
composes its query with ``urllib.parse.urlencode``: form encoding, so a space goes out as ``+`` and ``*`` as
``%2A``; its signature covers the RFC 3986 form ``%20``/``%2A`` of the decoded values, as ours does.)
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import PAI_KEY, PAI_SECRET, pai_conn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

SPECIAL = " +*~%&=/?#'\"!()é中版本\U0001f600"
values = st.text(
    alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters(min_codepoint=0x21, max_codepoint=0x7E)),
    min_size=1,
    max_size=12,
)
FIXED = ["a b", "a+b", "a*b", "a~b", "模型 v1", "100%", "x=1&y=2", " lead", "trail ", "é+ *~"]


class Recorder(http.server.BaseHTTPRequestHandler):
    targets: list[str] = []

    def do_GET(self) -> None:
        Recorder.targets.append(self.path)
        body = json.dumps({"RequestId": "r", "TotalCount": 0, "Versions": [], "Models": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


def sdk_client(port: int) -> Any:
    from alibabacloud_aiworkspace20210204.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(
        Config(access_key_id=PAI_KEY, access_key_secret=PAI_SECRET, endpoint=f"127.0.0.1:{port}", protocol="http")
    )


def targets_of(call: Any) -> str:
    Recorder.targets.clear()
    call()
    assert len(Recorder.targets) == 1
    return Recorder.targets[0]


def check_list_model_versions(port: int, hook: PaiModelRegistryHook, label: str) -> None:
    from alibabacloud_aiworkspace20210204 import models

    request = models.ListModelVersionsRequest(
        label=label, order="DESC", sort_by="GmtCreateTime", page_number=1, page_size=100
    )
    expected = targets_of(lambda: sdk_client(port).list_model_versions("m-1", request))
    ours = targets_of(lambda: hook.list_model_versions("m-1", label_filter=label))
    assert ours == expected


def check_labelled_page(port: int, hook: PaiModelRegistryHook, label: str) -> None:
    """The gate's alias read (one page, Label filter) as the SDK sends it; a value no label can hold is refused
    before anything is sent."""
    from alibabacloud_aiworkspace20210204 import models

    from airflow_provider_modelreg.errors import RegistryInputError
    from airflow_provider_modelreg.validation import check_pai_label_part

    try:
        check_pai_label_part(label, "label")
    except RegistryInputError:
        Recorder.targets.clear()
        with pytest.raises(RegistryInputError):
            hook.list_model_versions_page("m-1", page=1, label=label)
        assert Recorder.targets == []
        return
    request = models.ListModelVersionsRequest(
        label=label, order="DESC", sort_by="GmtCreateTime", page_number=2, page_size=100
    )
    expected = targets_of(lambda: sdk_client(port).list_model_versions("m-1", request))
    ours = targets_of(lambda: hook.list_model_versions_page("m-1", page=1, label=label))
    assert ours == expected


def check_list_models(port: int, hook: PaiModelRegistryHook, name: str) -> None:
    from alibabacloud_aiworkspace20210204 import models

    request = models.ListModelsRequest(
        model_name=name, workspace_id="ws pai", order="DESC", sort_by="GmtCreateTime", page_number=1, page_size=100
    )
    expected = targets_of(lambda: sdk_client(port).list_models(request))
    ours = targets_of(lambda: hook.list_models(name_filter=name, workspace_id="ws pai"))
    assert ours == expected


@pytest.mark.parametrize("value", FIXED)
def test_query_values_are_sent_as_the_sdk_sends_them(
    server: http.server.ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    pai_conn(monkeypatch, f"http://127.0.0.1:{server.server_port}")
    hook = PaiModelRegistryHook()
    check_list_model_versions(server.server_port, hook, value)
    check_labelled_page(server.server_port, hook, value)
    check_list_models(server.server_port, hook, value)


def test_a_space_goes_out_as_the_sdk_sends_it(
    server: http.server.ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pai_conn(monkeypatch, f"http://127.0.0.1:{server.server_port}")
    target = targets_of(lambda: PaiModelRegistryHook().list_model_versions("m-1", label_filter="a b+c*d~e中"))
    assert "Label=a+b%2Bc%2Ad~e%E4%B8%AD&" in target


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_arbitrary_query_values_match_the_sdk(
    server: http.server.ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    pai_conn(monkeypatch, f"http://127.0.0.1:{server.server_port}")
    hook = PaiModelRegistryHook()
    check_list_model_versions(server.server_port, hook, value)
    check_labelled_page(server.server_port, hook, value)
    check_list_models(server.server_port, hook, value)
