"""A person approves or rejects a PAI model version in Airflow's UI, and the answer is written back to PAI
(Airflow 3.1+: built on the standard provider's human-in-the-loop ``ApprovalOperator``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowOptionalProviderFeatureException,
    AirflowSkipException,
    BaseOperator,
)

from airflow_provider_modelreg.approval import rendered_required
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.links import PaiModelVersionLink, track_links
from airflow_provider_modelreg.models import ApprovalStatus, PaiModelVersion
from airflow_provider_modelreg.task_hook import TaskHook

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["APPROVAL_INFO_KEY", "HAS_HITL", "PaiModelVersionApprovalHITLOperator"]

#: The ``ExtraInfo`` key under which the decision is recorded on the version (who, when, from which run).
APPROVAL_INFO_KEY = "airflow_approval"
#: XCom key of the version as the reviewer was shown it (a changed version is a conflict, never overwritten).
SEEN_KEY = "version_seen"

try:  # Airflow 3.1+ with a standard provider that has human-in-the-loop operators
    from airflow.providers.standard.operators.hitl import ApprovalOperator as _ApprovalOperator

    HAS_HITL = True
except (ImportError, AirflowOptionalProviderFeatureException):
    HAS_HITL = False

    class _ApprovalOperator(BaseOperator):  # type: ignore[no-redef]
        """Below Airflow 3.1: no human-in-the-loop; building the task says so."""

        APPROVE, REJECT = "Approve", "Reject"

        def __init__(self, **kwargs: Any) -> None:
            raise AirflowOptionalProviderFeatureException(
                "PaiModelVersionApprovalHITLOperator needs Airflow 3.1+ (human-in-the-loop operators of the standard "
                "provider); on older Airflow approve with PaiUpdateModelVersionApprovalOperator"
            )


def _seen(version: PaiModelVersion) -> dict[str, Any]:
    modified = version.gmt_modified_time
    return {"status": version.approval_status, "modified": modified.isoformat() if modified else None}


def _body(model_id: str, version: PaiModelVersion) -> str:
    labels = ", ".join(f"`{lb.key}={lb.value}`" for lb in version.labels or []) or "none"
    metrics = ", ".join(f"{k}: {v}" for k, v in (version.metrics or {}).items()) or "none"
    return (
        f"**Model** `{model_id}`, **version** `{version.version_name}` ({version.approval_status})\n\n"
        f"* **Uri**: `{version.uri}`\n* **Metrics**: {metrics}\n* **Labels**: {labels}\n"
        f"* **Created**: {version.gmt_create_time}\n\nApprove writes Approved to PAI (terminal: PAI's notification "
        "rules fire); Reject writes Rejected."
    )


class PaiModelVersionApprovalHITLOperator(TaskHook[PaiModelRegistryHook], _ApprovalOperator):
    """Asks a person to approve or reject a PAI model version (Airflow's human-in-the-loop UI) and writes the
    answer to PAI as the version's ApprovalStatus, with who and when in its ``ExtraInfo`` (``airflow_approval``).

    * The version is read first: already Approved, the task returns its ``ModelVersionRef`` without asking;
      already Rejected, it is skipped (and so is what depends on it). The reviewer sees the Uri, metrics and labels.
    * On the answer the version is read again: if it changed meanwhile (approved elsewhere, modified), the task
      fails as a conflict and writes nothing.
    * No answer before ``response_timeout``: nothing is written and the task fails, unless ``write_on_timeout``
      (``"Rejected"``) says what to write.
    * Reject skips the downstream tasks, as the standard ``ApprovalOperator`` does.

    Needs Airflow 3.1+; on older Airflow building the task raises ``AirflowOptionalProviderFeatureException``.

    :param model_id: PAI ModelId. (templated)
    :param version_name: the VersionName. (templated)
    :param subject: the question shown (default: "Approve model <id> version <name>?"). (templated)
    :param body: the text shown with it, Markdown (default: the version's Uri, metrics and labels). (templated)
    :param write_on_timeout: ``None`` (default: write nothing) or ``"Rejected"``.
    :param pai_conn_id: connection of type ``pai``. (templated)
    :param max_attempts: attempts per registry request (1-20; default: the connection's).
    :param call_timeout: seconds per registry call, retries included (default: the connection's).
    """

    template_fields: Sequence[str] = ("subject", "body", "model_id", "version_name", "pai_conn_id")
    operator_extra_links = (PaiModelVersionLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        version_name: str,
        subject: str | None = None,
        body: str | None = None,
        write_on_timeout: str | None = None,
        pai_conn_id: str = PaiModelRegistryHook.default_conn_name,
        max_attempts: int | None = None,
        call_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        settings = self.request_settings(kwargs, max_attempts, call_timeout)
        if write_on_timeout not in (None, "Rejected"):
            from airflow_provider_modelreg.errors import RegistryInputError

            raise RegistryInputError("write_on_timeout", "must be None or 'Rejected'", write_on_timeout)
        super().__init__(subject=subject or f"Approve model {model_id} version {version_name}?", body=body, **kwargs)
        self.max_attempts, self.call_timeout = settings
        self.model_id = model_id
        self.version_name = version_name
        self.write_on_timeout = write_on_timeout
        self.pai_conn_id = pai_conn_id
        track_links(self)

    def _make_hook(self, **overrides: Any) -> PaiModelRegistryHook:
        return PaiModelRegistryHook(self.pai_conn_id, **overrides)

    def _ids(self) -> tuple[str, str]:
        return rendered_required(self.model_id, "model_id"), rendered_required(self.version_name, "version_name")

    def _ref(self, model_id: str, version: PaiModelVersion, context: Context) -> dict[str, Any]:
        ref = self.hook.version_ref(model_id, version).to_xcom()
        PaiModelVersionLink.persist(self, ref, None, context=context)
        self._lineage_ref = ref
        return ref

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the version's artifact in, the registry version out, and the run facet
        ``modelreg_model_versions`` with the status written and who decided (``approved_by``)."""
        from airflow_provider_modelreg.lineage_facets import operator_lineage  # only when OpenLineage asks (P4)

        ref = getattr(self, "_lineage_ref", None)
        return operator_lineage([ref] if ref else [], approved_by=getattr(self, "_decided_by", None))

    def execute(self, context: Context) -> Any:
        model_id, version_name = self._ids()
        try:
            version = self.hook.get_model_version(model_id, version_name)
            status = version.status
            if status is ApprovalStatus.APPROVED:
                self.log.info("Model %s version %s is Approved already: nothing to ask", model_id, version_name)
                return self._ref(model_id, version, context)
            if status is ApprovalStatus.REJECTED:
                raise AirflowSkipException(f"Model {model_id} version {version_name} is Rejected already (terminal)")
            self.body = self.body or _body(model_id, version)
            context["ti"].xcom_push(key=SEEN_KEY, value=_seen(version))
        finally:
            self.close_hook()
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """The answer: check the version did not change, write the status and who decided, then let the
        ``ApprovalOperator`` skip the downstream tasks on Reject."""
        return self.closing_hook(lambda: self._complete(context, event))

    def _complete(self, context: Context, event: dict[str, Any]) -> Any:
        model_id, version_name = self._ids()
        timed_out = "error" in event and event.get("error_type") == "timeout"
        if timed_out and self.write_on_timeout is None:
            self.log.warning("No answer for model %s version %s in time: nothing written", model_id, version_name)
            return super().execute_complete(context, event)  # raises the standard timeout error
        who: Any
        when: Any
        if timed_out:
            wanted, who, when = ApprovalStatus.REJECTED, {"id": "timeout", "name": "response_timeout"}, None
        else:
            chosen = list(event.get("chosen_options") or [])
            wanted = ApprovalStatus.APPROVED if chosen == [self.APPROVE] else ApprovalStatus.REJECTED
            who, when = event.get("responded_by_user"), event.get("responded_at")
        hook = self.hook
        current = hook.get_model_version(model_id, version_name)
        seen = context["ti"].xcom_pull(task_ids=self.task_id, key=SEEN_KEY)
        if _seen(current) != seen:
            raise AirflowFailException(
                f"Model {model_id} version {version_name} changed while waiting for the answer (now "
                f"{current.approval_status}, modified {current.gmt_modified_time}): {wanted.value} not written"
            )
        ti = context["ti"]
        record = {
            "status": wanted.value,
            "by": who,
            "at": when.isoformat() if isinstance(when, datetime) else when,
            "dag_id": getattr(ti, "dag_id", None),
            "run_id": getattr(ti, "run_id", None),
            "task_id": getattr(ti, "task_id", None),
        }
        extra = {**(current.extra_info or {}), APPROVAL_INFO_KEY: record}
        hook.update_model_version(model_id, version_name, approval_status=wanted, extra_info=extra)
        self._decided_by = who
        self.log.info("Model %s version %s: %s by %s", model_id, version_name, wanted.value, who)
        ref = self._ref(model_id, hook.get_model_version(model_id, version_name), context)
        if not timed_out:
            super().execute_complete(context, event)  # Reject: the downstream tasks are skipped
        return ref
