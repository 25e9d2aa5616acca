"""Transport hardening (issue 19, points 7 and 8), over real HTTP on 127.0.0.1.

A rotated CA bundle is read again; building a transport in an async path never blocks the event loop; a
``user:password@`` in an endpoint is refused at parsing and never repeated; ``max_pages`` refuses non-integers like
every other numeric setting; throttling answers on a 400/403 are retried and retryable.
"""

from __future__ import annotations

import asyncio
import asyncio.events as asyncio_events
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import build_seed, fabric_conn, pai_conn
from test_hostile_transport import (  # the tiny servers and the private CA of the hostile-transport suite
    FAST,
    OK_VERSION,
    Server,
    _cert_pair,
    answer,
    read_request,
    responder,
    run,
)

from airflow_provider_modelreg.errors import (
    RegistryConnectionConfigError,
    RegistryInvalidRequestError,
    RegistryThrottledError,
    RegistryTransportError,
)
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.paging import DEFAULT_MAX_PAGES
from airflow_provider_modelreg.transport import RegistryTransport, public_url
from airflow_provider_modelreg.transport import network as transport_module  # TLS and proxies live there

SECRET = "s3cr3t-in-the-url"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(handler: Any, ssl_context: Any = None) -> Server:
        server = Server(handler, ssl_context)
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ------------------------------------------------------------------------------------------------ CA bundle rotation


def test_a_rotated_ca_bundle_is_read_again_without_a_restart(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old_ca, old_context = _cert_pair(tmp_path / "old")
    new_ca, new_context = _cert_pair(tmp_path / "new")
    bundle = tmp_path / "ca.pem"  # the path the connection names, as a mounted secret would be
    shutil.copy(old_ca, bundle)
    old_server = serve(responder(200, OK_VERSION), ssl_context=old_context)
    pai_conn(monkeypatch, f"https://127.0.0.1:{old_server.port}", ca_bundle=str(bundle))
    assert run(mode, PaiModelRegistryHook()).version_name == "1.0.0"

    # the private CA is rotated: the registry now presents a certificate of the new CA, the file holds the new CA
    staged = tmp_path / "ca.pem.new"
    shutil.copy(new_ca, staged)
    os.replace(staged, bundle)
    new_server = serve(responder(200, OK_VERSION), ssl_context=new_context)
    pai_conn(monkeypatch, f"https://127.0.0.1:{new_server.port}", ca_bundle=str(bundle))
    assert run(mode, PaiModelRegistryHook(retry=FAST)).version_name == "1.0.0"  # no restart needed

    # rewritten in place (same inode) works too
    bundle.write_bytes(old_ca.read_bytes())
    os.utime(bundle, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    pai_conn(monkeypatch, f"https://127.0.0.1:{old_server.port}", ca_bundle=str(bundle))
    assert run(mode, PaiModelRegistryHook(retry=FAST)).version_name == "1.0.0"


def test_a_long_lived_transport_follows_a_rotated_ca_bundle(
    serve: Callable[..., Server], tmp_path: Path, mode: str
) -> None:
    """A credential service's transport lives as long as the process: it must not need a restart either."""
    from airflow_provider_modelreg.auth import AcsV3Auth

    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old_ca, context = _cert_pair(tmp_path / "old")
    new_ca, _ = _cert_pair(tmp_path / "new")
    bundle = tmp_path / "ca.pem"
    shutil.copy(old_ca, bundle)

    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # then closed: every request makes a new TLS handshake
        writer.write(answer(200, OK_VERSION, {"Connection": "close"}))
        await writer.drain()

    server = serve(one_per_connection, ssl_context=context)
    transport = RegistryTransport(
        vendor="pai",
        base_url=f"https://127.0.0.1:{server.port}",
        auth=AcsV3Auth("LTAIkey", "secret"),
        retry=FAST,
        ca_bundle=str(bundle),
    )

    def call() -> int:
        if mode == "sync":
            return transport.request("GET", "/api/v1/models/m-1/versions/1.0.0").status_code

        async def go() -> int:
            try:
                return (await transport.arequest("GET", "/api/v1/models/m-1/versions/1.0.0")).status_code
            finally:
                await transport.aclose()

        return asyncio.run(go())

    assert call() == 200
    context.load_cert_chain(tmp_path / "new" / "server.pem")  # the server now presents the new CA's certificate
    with pytest.raises(RegistryTransportError) as err:  # ... before the bundle is rotated: not retryable
        call()
    assert err.value.retryable is False and err.value.attempts == 1
    staged = tmp_path / "ca.pem.new"
    shutil.copy(new_ca, staged)
    os.replace(staged, bundle)
    assert call() == 200  # the same transport: one failed handshake, then the new bundle


def test_an_unchanged_ca_bundle_is_loaded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, _ = _cert_pair(tmp_path)
    loads: list[str] = []
    real = transport_module.ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> Any:
        loads.append(str(kwargs.get("cafile")))
        return real(*args, **kwargs)

    monkeypatch.setattr(transport_module.ssl, "create_default_context", counting)
    first = transport_module.shared_ssl_context(str(ca))
    assert transport_module.shared_ssl_context(str(ca)) is first
    assert loads == [str(ca)]


# ------------------------------------------------------------------------------------------------ the event loop


def test_building_transports_never_blocks_the_event_loop(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = make_emulator(seed=build_seed())
    ca, _ = _cert_pair(tmp_path)

    async def calls() -> None:
        pai, fabric = PaiModelRegistryHook(), FabricModelRegistryHook()
        try:
            assert (await pai.aget_model_version("m-main", "1.0.0")).version_name == "1.0.0"
            assert (await fabric.alist_model_versions_page("fm-1", workspace_id="ws-1")).total == 3
        finally:
            await pai.aclose()
            await fabric.aclose()

    pai_conn(monkeypatch, emu.url)
    fabric_conn(monkeypatch, emu.url, auth_type="token", ca_bundle=str(ca))
    asyncio.run(calls())  # imports and first-use work of the libraries, once per process

    # "after a restart": nothing cached; and building an SSL context takes 0.2 s (a large bundle, a slow disk)
    transport_module._ssl_context.cache_clear()
    real_create = transport_module.ssl.create_default_context
    real_certifi = transport_module.httpx.create_ssl_context

    on_loop: list[str] = []

    def slow(real: Callable[..., Any]) -> Callable[..., Any]:
        def build(*args: Any, **kwargs: Any) -> Any:
            # called from a coroutine on the event loop's thread: the loop would stall for the whole build
            if asyncio_events._get_running_loop() is not None:
                on_loop.append("".join(traceback.format_stack(limit=8)))
            time.sleep(0.2)
            return real(*args, **kwargs)

        return build

    monkeypatch.setattr(transport_module.ssl, "create_default_context", slow(real_create))
    monkeypatch.setattr(transport_module.httpx, "create_ssl_context", slow(real_certifi))
    pai_conn(monkeypatch, emu.url, attempt_timeout=29)  # other settings: other shared credentials, fresh transports
    fabric_conn(monkeypatch, emu.url, auth_type="token", ca_bundle=str(ca), attempt_timeout=29)
    built = len(on_loop)
    asyncio.run(calls())
    # decided by where the build ran, not by a clock: a loaded machine cannot make it pass or fail
    assert on_loop[built:] == [], on_loop[built:]


# ------------------------------------------------------------------------------------------------ userinfo in URLs


@pytest.mark.parametrize(
    "endpoint", [f"https://ak:{SECRET}@registry.example.com", f"https://:{SECRET}@registry.example.com"]
)
@pytest.mark.parametrize("vendor", ["pai", "fabric"])
def test_userinfo_in_an_endpoint_is_refused_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, vendor: str
) -> None:
    if vendor == "pai":
        pai_conn(monkeypatch, endpoint)
        hook: Any = PaiModelRegistryHook()
    else:
        fabric_conn(monkeypatch, endpoint)
        hook = FabricModelRegistryHook()
    with pytest.raises(RegistryConnectionConfigError) as err:
        hook.transport  # noqa: B018
    assert err.value.field == "endpoint"
    assert "user:password@" in str(err.value)
    assert SECRET not in str(err.value) and SECRET not in repr(err.value.value)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"auth_type": "token", "iam_endpoint": f"https://u:{SECRET}@iam.example.com"}, "iam_endpoint"),
        ({"auth_type": "metadata", "metadata_endpoint": f"http://u:{SECRET}@169.254.169.254"}, "metadata_endpoint"),
    ],
)
def test_userinfo_in_a_credential_endpoint_is_refused_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], field: str
) -> None:
    fabric_conn(monkeypatch, "http://127.0.0.1:9", **extra)
    with pytest.raises(RegistryConnectionConfigError) as err:
        FabricModelRegistryHook().transport  # noqa: B018
    assert err.value.field == field
    assert SECRET not in str(err.value) and SECRET not in repr(err.value.value)


def test_a_transport_never_shows_userinfo(serve: Callable[..., Server]) -> None:
    from airflow_provider_modelreg.auth import AcsV3Auth

    transport = RegistryTransport(
        vendor="pai",
        base_url=f"http://ak:{SECRET}@127.0.0.1:9",  # nothing listens on port 9
        auth=AcsV3Auth("LTAIkey", "secret"),
        retry=FAST,
    )
    assert SECRET not in repr(transport) and SECRET not in transport.base_url
    with pytest.raises(RegistryTransportError) as err:
        transport.request("GET", "/api/v1/models")
    assert "pai registry at http://127.0.0.1:9 unreachable" in str(err.value)
    assert SECRET not in str(err.value)
    assert public_url(f"https://ak:{SECRET}@h:8443/p?q=1") == "https://h:8443/p?q=1"


# ------------------------------------------------------------------------------------------------ max_pages


@pytest.mark.parametrize("raw", [1.9, "1.9", True, "None", "null", "ten", 0, "0", -1, 1_000_001, "nan", "inf"])
def test_max_pages_refuses_what_every_other_numeric_setting_refuses(monkeypatch: pytest.MonkeyPatch, raw: Any) -> None:
    pai_conn(monkeypatch, "http://127.0.0.1:9", max_pages=raw)
    hook = PaiModelRegistryHook()
    with pytest.raises(RegistryConnectionConfigError) as err:
        hook.max_pages(hook.connection)
    assert err.value.field == "max_pages"


@pytest.mark.parametrize(("raw", "pages"), [(None, DEFAULT_MAX_PAGES), ("", DEFAULT_MAX_PAGES), (5, 5), ("7", 7),
                                            (3.0, 3)])  # fmt: skip
def test_max_pages_accepts_whole_numbers(monkeypatch: pytest.MonkeyPatch, raw: Any, pages: int) -> None:
    pai_conn(monkeypatch, "http://127.0.0.1:9", max_pages=raw)
    hook = PaiModelRegistryHook()
    assert hook.max_pages(hook.connection) == pages


# ------------------------------------------------------------------------------------------------ retryable


def test_a_retry_after_on_a_400_is_retried_and_retryable(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    body = json.dumps({"Code": "QuotaExceeded.Temporary", "Message": "slow down", "RequestId": "rid-q"}).encode()
    seen: list[bytes] = []
    server = serve(responder(400, body, {"x-acs-retry-after": "10"}, log=seen))
    pai_conn(monkeypatch, server.url)
    with pytest.raises(RegistryInvalidRequestError) as err:
        run(mode, PaiModelRegistryHook(retry=FAST))
    assert len(seen) == FAST.max_attempts  # retried, as Alibaba's SDK does
    assert err.value.retryable is True  # and the error says so: the next poll may succeed


def test_a_throttling_code_on_a_403_is_retried_and_retryable(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps({"error_code": "APIG.0308", "error_msg": "The request is throttled."}).encode()
    seen: list[bytes] = []
    server = serve(responder(403, body, log=seen))
    fabric_conn(monkeypatch, server.url)
    with pytest.raises(RegistryThrottledError) as err:
        FabricModelRegistryHook(retry=FAST).list_model_versions_page("fm-1", workspace_id="ws-1")
    assert len(seen) == FAST.max_attempts
    assert err.value.retryable is True and err.value.code == "APIG.0308"
