"""Canary release of a PAI-EAS service in its service group: traffic in declared steps, each verified."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_modelreg.eas_models import EasService, EasServiceStatus
from airflow_provider_modelreg.eas_traffic import (
    RESTORE,
    CanaryStep,
    EasCanaryError,
    EasCanaryRejectedError,
    EasSafetyLockError,
    lock_forbids,
    plan_canary,
    resume_index,
    traffic_mismatch,
)
from airflow_provider_modelreg.errors import ModelRegistryError, RegistryInputError, one_line
from airflow_provider_modelreg.operators.eas_traffic import _DEFAULT_CONN, _EasOperator
from airflow_provider_modelreg.validation import rendered_optional

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["PaiEasCanaryOperator"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class _StepFailed(Exception):
    """A step did not hold (internal: the operator puts traffic back and raises EasCanaryError). ``judged``: the
    new service itself was found bad (its verification failed, or it stopped running)."""

    def __init__(self, reason: str, *, judged: bool = False) -> None:
        super().__init__(reason)
        self.judged = judged


class PaiEasCanaryOperator(_EasOperator):
    """Moves a service group's traffic from ``old_service_name`` to ``service_name`` in declared ``steps``, verifying
    each, and puts it all back on the old service when a step fails.

    The new service must already run in the old one's service group (deployed e.g. by
    :class:`~airflow_provider_modelreg.operators.eas.PaiEasDeployOperator` with
    ``service_overrides={"metadata": {"group": "<group>"}}``; a group's new member gets no traffic by default) and
    be ready; both must be in the same ``ServiceGroup``, and neither may have a safety lock that forbids
    ReleaseService (:class:`~airflow_provider_modelreg.eas_traffic.EasSafetyLockError`, nothing sent).

    EAS semantics used: the ``grouping`` members of a group share its traffic in proportion to their ``Weight``. A
    step of ``p`` % sends ReleaseService(``grouping``, ``p``) to the new service, then ReleaseService(``grouping``,
    ``100 - p``) to the old one (the new service's share never overshoots while the two calls land). At 100 the
    old service stays in the group with weight 0: it serves nothing, and going back is one weight change. After
    each step DescribeService must show both settings (read up to ``traffic_checks`` times, never assumed) and the
    new service ``Running``; after ``bake_time`` seconds the verification runs: ``verify(context, step, service)``
    (the step's percentage and the new service's :class:`~airflow_provider_modelreg.eas_models.EasService`; it
    must return True) or, with ``probe_path``, an HTTP GET of the new service's endpoint plus that path with its
    access token, which must answer 2xx (TLS verified; an ``http://`` EAS endpoint is probed as ``https://``,
    plain HTTP only to a loopback host).

    A retry resumes: when DescribeService already shows a step's two settings (the worker died mid-canary), the
    canary starts at the latest such step, releasing and verifying it again, and never moves traffic back down
    first (:func:`~airflow_provider_modelreg.eas_traffic.resume_index`).

    A failed release, a setting that did not take, or a failed verification: the new service goes to weight 0 and
    the old one to ``grouping``/100, verified by DescribeService, then
    :class:`~airflow_provider_modelreg.eas_traffic.EasCanaryError` names the step and why (``restored`` says whether
    the old service was verified serving again). When the step judged the new service bad (verification, or it
    stopped running) and traffic is verified back, the error is
    :class:`~airflow_provider_modelreg.eas_traffic.EasCanaryRejectedError`: the task fails without retries, as a
    retry would send traffic to that service again.

    XCom: ``{"service_name", "old_service_name", "steps", "service", "old_service"}`` (summaries, never a token).

    :param service_name: the new service. (templated)
    :param old_service_name: the service serving the group now. (templated)
    :param steps: the new service's share after each step, in percent: strictly increasing, 1-100 (default
        ``[10, 50, 100]``; a plan ending below 100 leaves that split).
    :param verify: ``verify(context, step, service) -> bool`` run after each step.
    :param probe_path: instead of ``verify``: the path probed on the new service's endpoint. (templated)
    :param probe_endpoint: ``internet`` (default) or ``intranet``: which endpoint of the service the probe calls.
    :param probe_base_url: a URL probed instead of the service's endpoint (e.g. a gateway). (templated) The
        service's access token goes to it only with ``probe_sends_token=True``: a templated URL must not be a way
        to hand the token to another host.
    :param probe_sends_token: send the service's access token to ``probe_base_url`` too (default False; the
        service's own endpoint always gets it).
    :param probe_timeout: seconds a probe may take (default 10).
    :param bake_time: seconds to let each step serve before verifying it (default 0).
    :param traffic_checks: DescribeService reads that may show a release not yet applied (default 3).
    :param poll_interval: seconds between those reads (default 5).
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator.
    """

    template_fields: Sequence[str] = (
        "service_name",
        "old_service_name",
        "probe_path",
        "probe_base_url",
        "pai_conn_id",
    )

    def __init__(
        self,
        *,
        service_name: str,
        old_service_name: str,
        steps: Sequence[int] = (10, 50, 100),
        verify: Callable[[Context, int, EasService], bool] | None = None,
        probe_path: str | None = None,
        probe_endpoint: Literal["internet", "intranet"] = "internet",
        probe_base_url: str | None = None,
        probe_sends_token: bool = False,
        probe_timeout: float = 10.0,
        bake_time: float = 0.0,
        traffic_checks: int = 3,
        poll_interval: float = 5.0,
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.service_name = service_name
        self.old_service_name = old_service_name
        self.steps = steps
        self.verify = verify
        self.probe_path = probe_path
        self.probe_endpoint = probe_endpoint
        self.probe_base_url = probe_base_url
        self.probe_sends_token = probe_sends_token
        self.probe_timeout = probe_timeout
        self.bake_time = bake_time
        self.traffic_checks = traffic_checks
        self.poll_interval = poll_interval
        self.pai_conn_id = pai_conn_id

    # -- checks before anything is sent

    def _checked(self) -> tuple[str, str, tuple[CanaryStep, ...]]:
        new, old = self._name(self.service_name), self._name(self.old_service_name, "old_service_name")
        if new == old:
            raise RegistryInputError("old_service_name", "must differ from service_name", old)
        plan = plan_canary(self.steps)
        if (self.verify is None) == (rendered_optional(self.probe_path, "probe_path") is None):
            raise RegistryInputError("verify", "give either verify (a callable) or probe_path, not both or neither")
        if self.verify is not None and not callable(self.verify):
            raise RegistryInputError("verify", "must be a callable (context, step, service) -> bool", self.verify)
        if self.probe_endpoint not in ("internet", "intranet"):
            raise RegistryInputError("probe_endpoint", "must be internet or intranet", self.probe_endpoint)
        if isinstance(self.traffic_checks, bool) or not isinstance(self.traffic_checks, int) or self.traffic_checks < 1:
            raise RegistryInputError("traffic_checks", "must be an integer from 1", self.traffic_checks)
        return new, old, plan

    def _preflight(self, new: EasService, old: EasService) -> None:
        for service in (new, old):
            if lock_forbids(service.safety_lock, "ReleaseService"):
                raise EasSafetyLockError(service.service_name, service.safety_lock, "ReleaseService")
        if not new.service_group or new.service_group != old.service_group:
            why = f"{new.service_name} is in group {new.service_group!r}, {old.service_name} in {old.service_group!r}"
            raise RegistryInputError("service_name", f"must be in the old service's service group: {why}")
        if new.rollout() != "ready":
            raise RegistryInputError("service_name", f"must be ready before a canary (it is {new.status.value})")
        if old.status is not EasServiceStatus.RUNNING:
            raise RegistryInputError("old_service_name", f"must be Running (it is {old.status.value})")

    # -- one step: release, see it took, verify

    def _release(self, new: str, old: str, step: CanaryStep) -> None:
        # the new service first: while the two calls land its share stays at or below the step's
        self.hook.release_service(new, traffic_state="grouping", weight=step.new_weight)
        self.hook.release_service(old, traffic_state="grouping", weight=step.old_weight)

    def _reads(self, new: str, old: str) -> Iterator[tuple[EasService, EasService]]:
        """Both services as DescribeService shows them, up to ``traffic_checks`` times, ``poll_interval`` apart."""
        for check in range(self.traffic_checks):
            if check:
                time.sleep(self.poll_interval)
            yield self.hook.describe_service(new), self.hook.describe_service(old)

    def _settled(self, new: str, old: str, step: CanaryStep) -> tuple[EasService, EasService]:
        """Both services as DescribeService shows them once the step's settings took (else :class:`_StepFailed`)."""
        for found_new, found_old in self._reads(new, old):
            wrong = [
                why
                for why in (
                    traffic_mismatch(found_new, step.new_weight),
                    traffic_mismatch(found_old, step.old_weight),
                )
                if why is not None
            ]
            if not wrong:
                if found_new.status is not EasServiceStatus.RUNNING:
                    raise _StepFailed(
                        f"{new} is {found_new.status.value} ({found_new.reason}: {found_new.message})", judged=True
                    )
                return found_new, found_old
            self.log.info("Step %d%%: not applied yet (%s)", step.percent, "; ".join(wrong))
        raise _StepFailed(f"the release did not take after {self.traffic_checks} reads: {'; '.join(wrong)}")

    def _probe_url(self, service: EasService) -> str:
        base = rendered_optional(self.probe_base_url, "probe_base_url")
        if base is None:
            base = service.internet_endpoint if self.probe_endpoint == "internet" else service.intranet_endpoint
        if not base:
            raise _StepFailed(f"{service.service_name} has no {self.probe_endpoint} endpoint to probe")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _StepFailed(f"cannot probe {base!r}: not an http(s) URL")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            parts = parts._replace(scheme="https")  # TLS, verified, for anything but a loopback host
        path = f"{parts.path.rstrip('/')}/{str(self.probe_path).lstrip('/')}"
        return urlunsplit(parts._replace(path=path))

    def _probe(self, service: EasService) -> None:
        import httpx  # on first probe: a DAG file does not load the HTTP client

        url = self._probe_url(service)
        own = rendered_optional(self.probe_base_url, "probe_base_url") is None or self.probe_sends_token is True
        token = service.access_token.get_secret_value() if service.access_token is not None and own else None
        headers = {"Authorization": token} if token else {}
        try:
            with httpx.Client(verify=True, timeout=float(self.probe_timeout), follow_redirects=False) as client:
                answer = client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise _StepFailed(
                f"probe GET {url} failed: {type(exc).__name__}: {one_line(str(exc), 200)}", judged=True
            ) from None
        if not 200 <= answer.status_code < 300:
            raise _StepFailed(f"probe GET {url} answered HTTP {answer.status_code}", judged=True)
        self.log.info("Probe GET %s answered HTTP %d", url, answer.status_code)

    def _verify(self, context: Context, step: CanaryStep, service: EasService) -> None:
        if self.verify is None:
            self._probe(service)
            return
        try:
            verdict = self.verify(context, step.percent, service)
        except Exception as exc:
            raise _StepFailed(f"verify raised {type(exc).__name__}: {one_line(str(exc), 200)}", judged=True) from None
        if verdict is not True:
            raise _StepFailed(f"verify returned {verdict!r}", judged=True)

    # -- putting traffic back

    def _restore(self, new: str, old: str) -> bool:
        """The new service at weight 0, the old one at ``grouping``/100, verified; False when it could not be."""
        try:
            self.hook.release_service(new, weight=RESTORE.new_weight)
            self.hook.release_service(old, traffic_state="grouping", weight=RESTORE.old_weight)
            for found_new, found_old in self._reads(new, old):
                if found_new.weight == 0 and traffic_mismatch(found_old, RESTORE.old_weight) is None:
                    self.log.info("Traffic is back on %s (verified); %s has weight 0", old, new)
                    return True
        except ModelRegistryError as exc:
            self.log.error("Putting traffic back on %s failed: %s", old, exc)
            return False
        self.log.error("Putting traffic back on %s did not take after %d reads", old, self.traffic_checks)
        return False

    # -- the task

    def run_registry(self, context: Context) -> dict[str, Any]:
        new, old, plan = self._checked()
        found_new, found_old = self.hook.describe_service(new), self.hook.describe_service(old)
        self._preflight(found_new, found_old)
        start = resume_index(plan, found_new, found_old)
        if start:
            self.log.info("Resuming at step %d%%: DescribeService shows its traffic (a retry)", plan[start].percent)
        for step in plan[start:]:
            self.log.info(
                "Step %d%%: %s weight %d, %s weight %d", step.percent, new, step.new_weight, old, step.old_weight
            )
            try:
                self._release(new, old, step)
                found_new, found_old = self._settled(new, old, step)
                if self.bake_time:
                    time.sleep(self.bake_time)
                self._verify(context, step, found_new)
            except (_StepFailed, ModelRegistryError) as exc:
                reason = str(exc)
                self.log.error("Step %d%% failed: %s; putting traffic back on %s", step.percent, reason, old)
                restored = self._restore(new, old)
                # judged bad and traffic is safe: a retry would only send traffic to it again
                rejected = restored and isinstance(exc, _StepFailed) and exc.judged
                error = EasCanaryRejectedError if rejected else EasCanaryError
                raise error(new, step.percent, reason, restored=restored) from exc
            self.log.info("Step %d%% holds", step.percent)
        return {
            "service_name": new,
            "old_service_name": old,
            "steps": [step.percent for step in plan],
            "service": found_new.to_output(),
            "old_service": found_old.to_output(),
        }
