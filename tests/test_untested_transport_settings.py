"""Transport settings no test reached before (test audit, section 8, points 7, 8 and 10), each with the mutant it
kills: a proxy URL carrying ``user:password@`` (the password registered with the masker, never repeated), invalid
ports on the proxy and the endpoints, a CA bundle that exists but is not PEM, and the checks of :class:`RetryPolicy`
(public: the hooks take ``retry=``) and of the :class:`RegistryTransport` constructor."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import fabric_conn, pai_conn

from airflow_provider_modelreg.errors import RegistryConnectionConfigError, RegistryInputError, RegistryTransportError
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.transport import RegistryTransport, RetryPolicy

PROXY_PASSWORD = "Pr0xy-Passw0rd-7788"
ONE = RetryPolicy(max_attempts=1, attempt_timeout=5, call_timeout=5)


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every value registered with Airflow's secret masker during the test."""
    import airflow.providers.common.compat.sdk as compat_sdk

    seen: list[str] = []
    real = compat_sdk.mask_secret

    def record(value: Any, name: Any = None) -> None:
        seen.append(value)
        real(value, name)

    monkeypatch.setattr(compat_sdk, "mask_secret", record)
    return seen


def _refused_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


# ------------------------------------------------------------------------------------------------ 7. proxy


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_proxy_password_is_masked_and_never_repeated(
    monkeypatch: pytest.MonkeyPatch, masked: list[str], caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    """``http://user:password@proxy:port``: the password goes to the masker when the transport is built, and
    neither the error of a failed call through the proxy nor any log line repeats it."""
    proxy = f"http://squid-user:{PROXY_PASSWORD}@127.0.0.1:{_refused_port()}"
    pai_conn(monkeypatch, "http://127.0.0.1:9", proxy=proxy)
    hook = PaiModelRegistryHook(retry=ONE)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RegistryTransportError) as err:
        if mode == "sync":
            hook.get_model_version("m-main", "1.0.0")
        else:
            asyncio.run(hook.aget_model_version("m-main", "1.0.0"))
    assert PROXY_PASSWORD in masked
    assert hook.transport.proxy == proxy  # the proxy is used as given (httpx sends Proxy-Authorization)
    shown = str(err.value) + repr(err.value) + repr(hook.transport) + caplog.text
    assert PROXY_PASSWORD not in shown


@pytest.mark.parametrize(
    ("proxy", "rule"),
    [
        (f"socks5://u:{PROXY_PASSWORD}@proxy.example.com:1080", "must be a proxy URL"),
        (f"http://u:{PROXY_PASSWORD}@proxy.example.com:3128/path", "must be a proxy URL"),
        (f"http://u:{PROXY_PASSWORD}@proxy.example.com:99999", "has an invalid port"),
        (f"http://u:{PROXY_PASSWORD}@proxy.example.com:port", "has an invalid port"),
        ("http://proxy.example.com:-1", "has an invalid port"),
    ],
    ids=["scheme", "path", "port out of range", "port not a number", "negative port"],
)
def test_a_bad_proxy_is_refused_naming_the_field_without_its_password(
    monkeypatch: pytest.MonkeyPatch, proxy: str, rule: str
) -> None:
    pai_conn(monkeypatch, "http://127.0.0.1:9", proxy=proxy)
    with pytest.raises(RegistryConnectionConfigError) as err:
        PaiModelRegistryHook().transport  # noqa: B018
    assert err.value.field == "proxy" and rule in str(err.value)
    assert PROXY_PASSWORD not in str(err.value) + repr(err.value) + repr(err.value.value)


@pytest.mark.parametrize("port", ["99999", "65536", "http", "-1"])
@pytest.mark.parametrize("field", ["pai endpoint", "fabric endpoint", "fabric iam_endpoint"])
def test_an_invalid_endpoint_port_is_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, port: str, field: str
) -> None:
    url = f"https://registry.example.com:{port}"
    hook: Any
    if field == "pai endpoint":
        pai_conn(monkeypatch, url)
        hook = PaiModelRegistryHook()
    elif field == "fabric endpoint":
        fabric_conn(monkeypatch, url)
        hook = FabricModelRegistryHook()
    else:
        fabric_conn(monkeypatch, "http://127.0.0.1:9", auth_type="token", iam_endpoint=url)
        hook = FabricModelRegistryHook()
    with pytest.raises(RegistryConnectionConfigError) as err:
        hook.transport  # noqa: B018
    assert err.value.field == field.split()[1]
    assert "has an invalid port" in str(err.value)


# ------------------------------------------------------------------------------------------------ 8. CA bundle


@pytest.mark.parametrize(
    "content",
    [
        b"this is not a certificate\n",
        b"",
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    ],
    ids=["text", "empty", "garbage between PEM markers"],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_ca_bundle_that_is_not_pem_is_a_typed_error_naming_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: bytes, mode: str
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(content)
    pai_conn(monkeypatch, "http://127.0.0.1:9", ca_bundle=str(bundle))
    hook = PaiModelRegistryHook(retry=ONE)
    with pytest.raises(RegistryConnectionConfigError) as err:
        if mode == "sync":
            hook.transport  # noqa: B018
        else:
            asyncio.run(hook.atransport())
    assert err.value.field == "ca_bundle"
    assert "could not be loaded as PEM CA certificates" in str(err.value)
    # the value as every RegistryInputError shows one: its repr, cut at 80 characters (tmp_path may be longer)
    assert f"(got {str(bundle)!r:.80})" in str(err.value)


# ------------------------------------------------------------------------------------------------ 10. RetryPolicy

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -3}, "max_attempts"),
        ({"base_delay": -0.1}, "base_delay"),
        ({"base_delay": NAN}, "base_delay"),
        ({"base_delay": INF}, "base_delay"),
        ({"max_delay": -1}, "max_delay"),
        ({"max_delay": NAN}, "max_delay"),
        ({"max_delay": INF}, "max_delay"),
        ({"min_delay": -1}, "min_delay"),
        ({"min_delay": NAN}, "min_delay"),
        ({"attempt_timeout": 0}, "attempt_timeout"),
        ({"attempt_timeout": -1}, "attempt_timeout"),
        ({"attempt_timeout": NAN}, "attempt_timeout"),
        ({"attempt_timeout": INF}, "attempt_timeout"),
        ({"call_timeout": 0}, "call_timeout"),
        ({"call_timeout": NAN}, "call_timeout"),
        ({"call_timeout": INF}, "call_timeout"),
    ],
    ids=repr,
)
def test_retry_policy_refuses_bad_budgets_delays_and_deadlines(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be"):
        RetryPolicy(**kwargs)


def test_retry_policy_accepts_its_bounds() -> None:
    policy = RetryPolicy(max_attempts=1, base_delay=0, max_delay=0, min_delay=0, attempt_timeout=0.001,
                         call_timeout=0.001)  # fmt: skip
    assert (policy.max_attempts, policy.floor, policy.backoff(3, random.Random(1))) == (1, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 21}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": 2.0}, "max_attempts"),
        ({"attempt_timeout": NAN}, "attempt_timeout"),
        ({"attempt_timeout": 0}, "attempt_timeout"),
        ({"call_timeout": INF}, "call_timeout"),
        ({"max_response_bytes": 0}, "max_response_bytes"),
    ],
    ids=repr,
)
def test_the_hook_refuses_bad_retry_arguments_at_once(kwargs: dict[str, Any], field: str) -> None:
    """The hooks' own arguments: checked in ``__init__`` (before any connection lookup), naming the argument."""
    with pytest.raises(RegistryInputError) as err:
        PaiModelRegistryHook(**kwargs)
    assert err.value.field == field


def test_the_hook_takes_max_attempts_from_1_to_20() -> None:
    assert PaiModelRegistryHook(max_attempts=1)._max_attempts == 1
    assert PaiModelRegistryHook(max_attempts=20)._max_attempts == 20


# ------------------------------------------------------------------------------------------------ 10. the transport


def _transport(**kwargs: Any) -> RegistryTransport:
    options: dict[str, Any] = {"vendor": "pai", "base_url": "https://registry.example.com", "auth": httpx.Auth()}
    options.update(kwargs)
    return RegistryTransport(**options)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "https://"}, "base_url must be https://host"),
        ({"base_url": "https:///models"}, "base_url must be https://host"),
        ({"base_url": "registry.example.com"}, "base_url must be https://host"),
        ({"base_url": "ftp://registry.example.com"}, "base_url must be https://host"),
        ({"max_response_bytes": 0}, "max_response_bytes must be at least 1"),
        ({"max_response_bytes": -1}, "max_response_bytes must be at least 1"),
    ],
    ids=repr,
)
def test_the_transport_constructor_refuses_a_url_without_host_or_a_cap_below_one(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _transport(**kwargs)


def test_the_transport_constructor_accepts_the_smallest_cap() -> None:
    assert _transport(max_response_bytes=1).max_response_bytes == 1
    assert _transport(base_url="https://registry.example.com:8443/").base_url == "https://registry.example.com:8443"
