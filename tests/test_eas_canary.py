"""PaiEasCanaryOperator against the emulator over 127.0.0.1 (issue 22): traffic moves in the declared steps and each
is read back by DescribeService; a failed verification, a weight that does not take, a release that keeps failing
or an unreadable answer put the traffic back on the old service (verified) and fail with EasCanaryError; a release
that fails once is retried; an HTTP probe (with the service's token) decides instead of a callable."""

from __future__ import annotations

import http.server
import json
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import httpx
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from helpers import background_server, build_seed, pai_conn

from airflow_provider_modelreg.eas_models import EasService
from airflow_provider_modelreg.eas_traffic import EasCanaryError, EasCanaryRejectedError, EasSafetyLockError
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks.eas import PaiEasHook
from airflow_provider_modelreg.operators.eas_canary import PaiEasCanaryOperator

REGION = "cn-hangzhou"


@pytest.fixture
def emu(make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from modelreg_emulator.eas import EasSettings

    emulator = make_emulator(seed=build_seed(), eas=EasSettings(create_seconds=600, update_seconds=600))
    pai_conn(monkeypatch, emulator.url, region=REGION, eas_endpoint=emulator.url)
    return emulator


@pytest.fixture
def hook(emu: Any) -> Iterator[PaiEasHook]:
    hook = PaiEasHook()
    for name in ("old_svc", "new_svc"):
        config = {"name": name, "model_path": "oss://b/m/", "processor": "p", "metadata": {"group": "fraud"}}
        hook.create_service(config)
        admin(emu, name, "advance")
    hook.release_service("old_svc", traffic_state="grouping", weight=100)  # the old service serves the group
    yield hook
    hook.close()


def admin(emu: Any, name: str, action: str) -> None:
    httpx.put(
        f"{emu.url}/_emulator/eas/services/{REGION}/{name}/{action}",
        json={},
        headers={"X-Modelreg-Admin": "1"},
        trust_env=False,
    ).raise_for_status()


def sent(emu: Any, route: str) -> int:
    return int(emu.request_log.count(f"eas.{route}"))


def traffic(hook: PaiEasHook, name: str) -> tuple[str | None, int | None]:
    found = hook.describe_service(name)
    return found.traffic_state, found.weight


def canary(**kwargs: Any) -> PaiEasCanaryOperator:
    given = {"service_name": "new_svc", "old_service_name": "old_svc", "poll_interval": 0.05, **kwargs}
    given.setdefault("verify", lambda context, step, service: True)
    return PaiEasCanaryOperator(task_id="canary", **given)


class Verifier:
    """A verify callable that records what it saw (the weights as DescribeService showed them) and fails at one
    step."""

    def __init__(self, hook: PaiEasHook, fail_at: int | None = None) -> None:
        self.hook = hook
        self.fail_at = fail_at
        self.seen: list[tuple[int, int | None, tuple[str | None, int | None]]] = []

    def __call__(self, context: Any, step: int, service: EasService) -> bool:
        self.seen.append((step, service.weight, traffic(self.hook, "old_svc")))
        return step != self.fail_at


def patch_route(monkeypatch: pytest.MonkeyPatch, key: str, wrap: Callable[[Any], Any]) -> None:
    """Replace the emulator's handler of one EAS route (``"PUT release"``, ``"GET "``) by ``wrap(real)``."""
    from modelreg_emulator import eas

    name, real = eas._SERVICE_ROUTES[key]
    monkeypatch.setitem(eas._SERVICE_ROUTES, key, (name, wrap(real)))


# ------------------------------------------------------------------------------------------------ the good path


def test_every_step_is_applied_read_back_and_verified_then_the_old_service_serves_nothing(
    emu: Any, hook: PaiEasHook
) -> None:
    verifier = Verifier(hook)
    out = canary(steps=[10, 50, 100], verify=verifier).execute({})
    assert verifier.seen == [
        (10, 10, ("grouping", 90)),
        (50, 50, ("grouping", 50)),
        (100, 100, ("grouping", 0)),
    ]
    assert traffic(hook, "new_svc") == ("grouping", 100) and traffic(hook, "old_svc") == ("grouping", 0)
    assert out["steps"] == [10, 50, 100] and out["service"]["weight"] == 100 and out["old_service"]["weight"] == 0
    assert "access_token" not in json.dumps(out) and sent(emu, "ReleaseService") == 1 + 6


def test_a_retry_after_a_crash_at_50_resumes_there_and_never_moves_traffic_back_down(
    emu: Any, hook: PaiEasHook
) -> None:
    hook.release_service("new_svc", traffic_state="grouping", weight=50)  # where the crashed try left it
    hook.release_service("old_svc", traffic_state="grouping", weight=50)
    before = sent(emu, "ReleaseService")
    verifier = Verifier(hook)
    out = canary(steps=[10, 50, 100], verify=verifier).execute({})
    assert verifier.seen == [(50, 50, ("grouping", 50)), (100, 100, ("grouping", 0))]
    assert sent(emu, "ReleaseService") == before + 4 and out["steps"] == [10, 50, 100]


def test_a_plan_ending_below_100_leaves_that_split(emu: Any, hook: PaiEasHook) -> None:
    canary(steps=[5, 25]).execute({})
    assert traffic(hook, "new_svc") == ("grouping", 25) and traffic(hook, "old_svc") == ("grouping", 75)


# ---------------------------------------------------------------------------------------- failures: traffic goes back


def assert_restored(hook: PaiEasHook, err: pytest.ExceptionInfo[EasCanaryError], step: int) -> None:
    assert err.value.step == step and err.value.restored is True and f"step {step}%" in str(err.value)
    assert traffic(hook, "new_svc")[1] == 0 and traffic(hook, "old_svc") == ("grouping", 100)


def test_a_failed_verification_puts_traffic_back_and_names_the_step(emu: Any, hook: PaiEasHook) -> None:
    verifier = Verifier(hook, fail_at=50)
    with pytest.raises(EasCanaryError) as err:
        canary(verify=verifier).execute({})
    assert_restored(hook, err, 50)
    assert "verify returned False" in str(err.value) and [s[0] for s in verifier.seen] == [10, 50]
    # judged bad and traffic is safe: Airflow must not retry (a retry would send traffic to it again)
    assert err.type is EasCanaryRejectedError and isinstance(err.value, AirflowFailException)


def test_a_verify_that_raises_is_a_failed_step(emu: Any, hook: PaiEasHook) -> None:
    def broken(context: Any, step: int, service: EasService) -> bool:
        raise ValueError("metrics backend down")

    with pytest.raises(EasCanaryError) as err:
        canary(verify=broken).execute({})
    assert_restored(hook, err, 10)
    assert "ValueError: metrics backend down" in err.value.reason and err.type is EasCanaryRejectedError


def test_a_weight_that_does_not_take_is_caught_by_reading_it_back(
    emu: Any, hook: PaiEasHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg_emulator.wire import ali_ok

    def ignoring_50(real: Any) -> Any:
        def handler(state: Any, req: Any, args: list[str]) -> Any:
            if json.loads(req.body).get("Weight") == 50:
                return ali_ok({"Message": "released"})  # says yes, changes nothing
            return real(state, req, args)

        return handler

    patch_route(monkeypatch, "PUT release", ignoring_50)
    verifier = Verifier(hook)
    with pytest.raises(EasCanaryError) as err:
        canary(verify=verifier, traffic_checks=2).execute({})
    assert_restored(hook, err, 50)
    assert "did not take" in err.value.reason and "Weight 10" in err.value.reason
    assert err.type is EasCanaryError  # EAS did not apply it: nothing says the service is bad, a retry may go on
    assert [s[0] for s in verifier.seen] == [10]  # never verified a step that was not applied


def test_a_release_that_fails_once_is_retried_and_the_canary_goes_on(
    emu: Any, hook: PaiEasHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg_emulator.wire import ApiError

    failures = [ApiError(503, "ServiceUnavailable", "try later")]

    def once_503(real: Any) -> Any:
        def handler(state: Any, req: Any, args: list[str]) -> Any:
            if failures:
                raise failures.pop()
            return real(state, req, args)

        return handler

    patch_route(monkeypatch, "PUT release", once_503)
    before = sent(emu, "ReleaseService")
    canary(steps=[30, 100]).execute({})
    assert sent(emu, "ReleaseService") - before == 4 + 1 and not failures
    assert traffic(hook, "new_svc") == ("grouping", 100)


def test_a_release_that_keeps_failing_fails_the_step_and_traffic_goes_back(
    emu: Any, hook: PaiEasHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg_emulator.wire import ApiError

    def failing_at_60(real: Any) -> Any:
        def handler(state: Any, req: Any, args: list[str]) -> Any:
            if args[1] == "new_svc" and json.loads(req.body).get("Weight") == 60:
                raise ApiError(500, "InternalError", "the gateway is down")
            return real(state, req, args)

        return handler

    patch_route(monkeypatch, "PUT release", failing_at_60)
    with pytest.raises(EasCanaryError) as err:
        canary(steps=[40, 60, 100], max_attempts=2).execute({})
    assert_restored(hook, err, 60)
    assert err.type is EasCanaryError and not isinstance(err.value, AirflowFailException)
    assert "InternalError" in err.value.reason


def test_an_unknown_status_is_never_a_step_that_held(
    emu: Any, hook: PaiEasHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg_emulator.wire import ali_ok

    garbled = [True]

    def sleeping_once(real: Any) -> Any:
        def handler(state: Any, req: Any, args: list[str]) -> Any:
            answer = real(state, req, args)
            if args[1] == "new_svc" and garbled and state.services[(REGION, "new_svc")].weight == 10:
                garbled.pop()
                return ali_ok({**json.loads(answer.body), "Status": "Sleeping"})
            return answer

        return handler

    patch_route(monkeypatch, "GET ", sleeping_once)
    with pytest.raises(EasCanaryError) as err:
        canary().execute({})
    assert_restored(hook, err, 10)
    assert "Status" in err.value.reason and not garbled


def test_when_traffic_cannot_be_put_back_the_error_says_so(
    emu: Any, hook: PaiEasHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg_emulator.wire import ali_ok

    def frozen(real: Any) -> Any:
        def handler(state: Any, req: Any, args: list[str]) -> Any:
            if state.services[(REGION, "new_svc")].weight == 10:
                return ali_ok({"Message": "released"})  # after the first step nothing changes any more
            return real(state, req, args)

        return handler

    patch_route(monkeypatch, "PUT release", frozen)
    with pytest.raises(EasCanaryError) as err:
        canary(verify=Verifier(hook, fail_at=10), traffic_checks=2).execute({})
    assert err.value.restored is False and "could NOT" in str(err.value)
    assert traffic(hook, "new_svc") == ("grouping", 10)


# ------------------------------------------------------------------------------------------------ the HTTP probe


class Probed(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []
    statuses: list[int] = []

    def do_GET(self) -> None:
        Probed.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(Probed.statuses.pop(0) if Probed.statuses else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def probe_server() -> Iterator[str]:
    Probed.seen, Probed.statuses = [], []
    with background_server(Probed) as srv:
        yield f"http://127.0.0.1:{srv.server_port}/api/predict/new_svc"


def test_the_probe_calls_the_endpoint_with_the_services_token(emu: Any, hook: PaiEasHook, probe_server: str) -> None:
    canary(verify=None, probe_path="/health", probe_base_url=probe_server, probe_sends_token=True).execute({})
    token = emu.registry.eas.services[(REGION, "new_svc")].token
    assert Probed.seen == [("/api/predict/new_svc/health", token)] * 3


def test_a_probe_base_url_gets_no_token_unless_asked(emu: Any, hook: PaiEasHook, probe_server: str) -> None:
    canary(verify=None, probe_path="/health", probe_base_url=probe_server).execute({})
    assert Probed.seen == [("/api/predict/new_svc/health", None)] * 3  # a templated URL cannot take the token


def test_a_probe_answering_503_fails_the_step(emu: Any, hook: PaiEasHook, probe_server: str) -> None:
    Probed.statuses = [200, 503]
    with pytest.raises(EasCanaryError) as err:
        canary(verify=None, probe_path="health", probe_base_url=probe_server).execute({})
    assert_restored(hook, err, 50)
    assert "answered HTTP 503" in err.value.reason and "health" in err.value.reason
    token = emu.registry.eas.services[(REGION, "new_svc")].token
    assert token not in str(err.value)


def test_an_eas_http_endpoint_is_probed_over_verified_tls(emu: Any, hook: PaiEasHook) -> None:
    op = canary(verify=None, probe_path="/ping")
    url = op._probe_url(hook.describe_service("new_svc"))
    assert url.startswith("https://") and url.endswith(".pai-eas.aliyuncs.com/api/predict/new_svc/ping")
    with mock.patch("httpx.Client") as client:
        client.return_value.__enter__.return_value.get.return_value = httpx.Response(200)
        op._probe(hook.describe_service("new_svc"))
    assert client.call_args.kwargs["verify"] is True


# ------------------------------------------------------------------------------------------------ refused up front


def test_refused_before_any_release(emu: Any, hook: PaiEasHook) -> None:
    before = sent(emu, "ReleaseService")
    for bad, field in (
        ({"steps": [50, 10]}, "steps"),
        ({"verify": None}, "verify"),
        ({"probe_path": "/x"}, "verify"),  # both
        ({"old_service_name": "new_svc"}, "old_service_name"),
    ):
        with pytest.raises(RegistryInputError) as err:
            canary(**bad).execute({})
        assert err.value.field == field
    hook.create_service({"name": "elsewhere", "model_path": "oss://b/m/", "metadata": {"group": "other"}})
    admin(emu, "elsewhere", "advance")
    with pytest.raises(RegistryInputError) as err:
        canary(old_service_name="elsewhere").execute({})
    assert "service group" in str(err.value)
    hook.update_service_safety_lock("old_svc", "all")
    with pytest.raises(EasSafetyLockError) as locked:
        canary().execute({})
    assert (locked.value.service_name, locked.value.lock) == ("old_svc", "all")
    assert sent(emu, "ReleaseService") == before
