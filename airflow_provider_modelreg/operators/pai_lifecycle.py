"""Operators for the lifecycle of a PAI model version: register it, label it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_modelreg.approval import check_alias, holds_alias, rendered_optional, rendered_required
from airflow_provider_modelreg.errors import ModelRegistryError, RegistryInputError, RegistryNotFoundError
from airflow_provider_modelreg.hooks.pai_lifecycle import PaiNewVersion, create_model_version_spec, label_list
from airflow_provider_modelreg.links import PaiModelVersionLink
from airflow_provider_modelreg.models import PaiModelVersion
from airflow_provider_modelreg.operators.pai import _DEFAULT_CONN, _PaiOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "RUN_LABEL",
    "PaiCreateModelVersionOperator",
    "PaiModelVersionLabelsOperator",
    "PaiSetModelVersionAliasOperator",
    "run_label_value",
]

#: The label key that records which task try of which DAG run registered a version (its value: a digest).
RUN_LABEL = "airflow-run"


def run_label_value(context: Context) -> str:
    """A short, stable digest of (DAG, run, task, map index): the same for every try of one task instance, so a
    retry finds what an earlier try registered. Label values allow neither ``=`` nor ``,``; run ids hold both."""
    ti = context["ti"]
    parts = [str(getattr(ti, name, "")) for name in ("dag_id", "run_id", "task_id", "map_index")]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


class PaiCreateModelVersionOperator(_PaiOperator):
    """Registers a model version in PAI (CreateModelVersion) and returns its ``ModelVersionRef`` dict.

    Idempotent: a retry after a crash (or a lost answer) finds the version this task instance registered instead
    of failing or registering a second one.

    * With ``version_name``: a version of that name with the same ``uri`` is this one; with another ``uri`` the task
      fails without retries (a name is never reused for other weights).
    * Without it (PAI picks the next minor version): the version carries the label ``airflow-run`` (a digest of the
      DAG, run, task and map index; ``record_run=True``), and a version with that label and the same ``uri`` is
      this one. With ``record_run=False`` and no name, a retry can register a second version.

    Every field is checked before anything is sent (``metrics`` at most 8,192 bytes of JSON, labels of at most 128
    bytes without ``=`` or ``,``, the VersionName pattern ``1.2.3[_suffix]``).

    :param model_id: PAI ModelId. (templated)
    :param uri: where the artifact is: ``oss://bucket.endpoint/path/`` (as PAI documents it) or ``https://...``.
        (templated)
    :param version_name: ``1.2.3`` or ``1.2.3_suffix``; None: the next minor version. (templated)
    :param approval_status: the new version's status (default: PAI's, Pending). (templated)
    :param format_type: FormatType, e.g. ``SavedModel``, ``ONNX``.
    :param framework_type: FrameworkType, e.g. ``TensorFlow``, ``PyTorch``.
    :param inference_spec: InferenceSpec for a later deploy, e.g. ``{"processor": "tensorflow_cpu_2.3"}``.
    :param labels: ``{key: value}`` labels. (templated)
    :param metrics: metrics (a JSON object of at most 8,192 bytes). (templated)
    :param version_description: VersionDescription. (templated)
    :param extra_info: ExtraInfo (a JSON object).
    :param source_type: ``Custom`` (default), ``PAIFlow`` or ``TrainingService``.
    :param source_id: SourceId (default for ``Custom``: ``airflow/<dag_id>/<run_id>/<task_id>``). (templated)
    :param record_run: label the version with ``airflow-run`` (the retry's way to find it; default True).
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = (
        "model_id",
        "uri",
        "version_name",
        "approval_status",
        "labels",
        "metrics",
        "version_description",
        "source_id",
        "pai_conn_id",
    )
    operator_extra_links = (PaiModelVersionLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        uri: str,
        version_name: str | None = None,
        approval_status: str | None = None,
        format_type: str | None = None,
        framework_type: str | None = None,
        inference_spec: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        metrics: dict[str, Any] | None = None,
        version_description: str | None = None,
        extra_info: dict[str, Any] | None = None,
        source_type: str = "Custom",
        source_id: str | None = None,
        record_run: bool = True,
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.uri = uri
        self.version_name = version_name
        self.approval_status = approval_status
        self.format_type = format_type
        self.framework_type = framework_type
        self.inference_spec = inference_spec
        self.labels = labels
        self.metrics = metrics
        self.version_description = version_description
        self.extra_info = extra_info
        self.source_type = source_type
        self.source_id = source_id
        self.record_run = record_run
        self.pai_conn_id = pai_conn_id

    def _fields(self, context: Context) -> tuple[PaiNewVersion, str | None]:
        """The new version's fields as rendered, and the run label's value (None: not recorded)."""
        labels = self.labels
        run = run_label_value(context) if self.record_run else None
        if run is not None:
            if labels is not None:
                label_list(labels)  # a value that is no dict of labels: the typed error naming the field
            labels = {**(labels or {}), RUN_LABEL: run}
        source_id = rendered_optional(self.source_id, "source_id")
        if source_id is None and self.source_type == "Custom":
            ti = context["ti"]
            source_id = "/".join(["airflow", *(str(getattr(ti, n, "")) for n in ("dag_id", "run_id", "task_id"))])
        fields = PaiNewVersion(
            version_name=rendered_optional(self.version_name, "version_name"),
            approval_status=rendered_optional(self.approval_status, "approval_status"),
            format_type=self.format_type,
            framework_type=self.framework_type,
            inference_spec=self.inference_spec,
            labels=labels or None,
            metrics=self.metrics,
            version_description=rendered_optional(self.version_description, "version_description"),
            extra_info=self.extra_info,
            source_type=self.source_type,
            source_id=source_id,
        )
        return fields, run

    def _registered(self, model_id: str, uri: str, name: str | None, run: str | None) -> PaiModelVersion | None:
        """The version an earlier try registered, if any; a name taken by other weights fails the task."""
        hook = self.hook
        if name is not None:
            try:
                found = hook.get_model_version(model_id, name)
            except RegistryNotFoundError:
                return None
            if found.uri != uri:
                raise AirflowFailException(
                    f"Model {model_id} already has a version {name} with another uri ({found.uri!r}, not {uri!r}): "
                    "a version name is never reused for other weights"
                )
            return found
        if run is None:
            return None
        listed = hook.list_model_versions(model_id, label_filter=run, max_results=None)
        mine = [
            v for v in listed if v.uri == uri and any(lb.key == RUN_LABEL and lb.value == run for lb in v.labels or ())
        ]
        return mine[0] if mine else None  # newest first: the one a retry would have made last

    def run_registry(self, context: Context) -> dict[str, Any]:
        model_id = rendered_required(self.model_id, "model_id")
        uri = rendered_required(self.uri, "uri")
        fields, run = self._fields(context)
        create_model_version_spec(model_id, uri, **fields)  # every field checked before any request
        name = fields.get("version_name")
        found = self._registered(model_id, uri, name, run)
        if found is not None:
            self.log.info(
                "Model %s version %s (uri %s) is registered already: using it", model_id, found.version_name, uri
            )
        else:
            try:
                name = self.hook.create_model_version(model_id, uri, **fields).version_name
            except ModelRegistryError:
                # the POST may have arrived (an answer lost, a try racing this one): look before failing
                found = self._registered(model_id, uri, name, run)
                if found is None:
                    raise
                self.log.warning(
                    "Model %s: the create failed, but version %s is ours: using it", model_id, found.version_name
                )
            else:
                self.log.info("Model %s: registered version %s (uri %s)", model_id, name, uri)
        version = found if found is not None else self.hook.get_model_version(model_id, str(name))
        return self._publish_version(context, self._ref(model_id, version))


class PaiModelVersionLabelsOperator(_PaiOperator):
    """Adds and removes labels of a PAI model version, then returns its ``ModelVersionRef`` dict as read back.

    Adding a label the version has sets its value; removing an absent one is no error: a retry repeats nothing
    harmful.

    :param model_id: PAI ModelId. (templated)
    :param version_name: the VersionName. (templated)
    :param add: ``{key: value}`` labels to add or set (keys and values of at most 128 bytes, no ``=`` or ``,``).
        (templated)
    :param remove: label keys to remove. (templated)
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = ("model_id", "version_name", "add", "remove", "pai_conn_id")
    operator_extra_links = (PaiModelVersionLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        version_name: str,
        add: dict[str, str] | None = None,
        remove: list[str] | None = None,
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.version_name = version_name
        self.add = add
        self.remove = remove
        self.pai_conn_id = pai_conn_id

    def run_registry(self, context: Context) -> dict[str, Any]:
        model_id = rendered_required(self.model_id, "model_id")
        version_name = rendered_required(self.version_name, "version_name")
        if not self.add and not self.remove:
            raise RegistryInputError("add", "give labels to add or keys to remove")
        if self.add:
            label_list(self.add, "add")  # checked before anything is sent
        hook = self.hook
        if self.add:
            hook.add_version_labels(model_id, version_name, self.add)
        if self.remove:
            hook.remove_version_labels(model_id, version_name, list(self.remove))
        version = hook.get_model_version(model_id, version_name)
        self.log.info("Model %s version %s labels: %s", model_id, version_name, _labels_of(version))
        return self._publish_version(context, self._ref(model_id, version))


def _labels_of(version: PaiModelVersion) -> dict[str, str | None]:
    return {label.key: label.value for label in version.labels or ()}


class PaiSetModelVersionAliasOperator(_PaiOperator):
    """Moves an alias (a label, by default ``alias=<name>``) to one version of a PAI model: the registry has no
    alias of its own, so this operator keeps the label on exactly one version.

    Order: add the label to the target first, then remove it from every other version that holds it, then read
    back. Between the two steps two versions hold the alias (never none): the task logs that window and pushes
    it as the XCom key ``alias_overlap_seconds``. A reader that resolves the alias should take the newest holder.
    The read-back fails the task when another version still holds it (e.g. a concurrent run moved it).

    :param model_id: PAI ModelId. (templated)
    :param version_name: the version that gets the alias. (templated)
    :param alias: the alias, e.g. ``champion`` (the label's value). (templated)
    :param alias_key: the label key of aliases (default ``alias``).
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = ("model_id", "version_name", "alias", "pai_conn_id")
    operator_extra_links = (PaiModelVersionLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        version_name: str,
        alias: str,
        alias_key: str = "alias",
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.version_name = version_name
        self.alias = alias
        self.alias_key = alias_key
        self.pai_conn_id = pai_conn_id

    def _holders(self, model_id: str, label: tuple[str, str]) -> list[PaiModelVersion]:
        listed = self.hook.list_model_versions(model_id, label_filter=label[1], max_results=None)
        return [v for v in listed if holds_alias(v, *label)]

    def run_registry(self, context: Context) -> dict[str, Any]:
        model_id = rendered_required(self.model_id, "model_id")
        version_name = rendered_required(self.version_name, "version_name")
        label = check_alias(self.alias, self.alias_key)  # checked before anything is sent, naming the field
        alias = label[1]
        hook = self.hook
        hook.add_version_labels(model_id, version_name, {self.alias_key: alias})
        added = time.monotonic()
        others = [v.version_name for v in self._holders(model_id, label) if v.version_name != version_name]
        for other in others:
            hook.remove_version_labels(model_id, other, [self.alias_key])
        overlap = time.monotonic() - added if others else 0.0
        holders = [v.version_name for v in self._holders(model_id, label)]
        if holders != [version_name]:
            raise AirflowFailException(
                f"Model {model_id}: alias {self.alias_key}={alias} is held by {holders or 'no version'} after the "
                f"move to {version_name} (did another run move it meanwhile?)"
            )
        if others:
            self.log.info(
                "Model %s: alias %s=%s moved from %s to %s; both held it for %.3f s",
                model_id,
                self.alias_key,
                alias,
                ", ".join(others),
                version_name,
                overlap,
            )
        else:
            self.log.info("Model %s: alias %s=%s set on %s", model_id, self.alias_key, alias, version_name)
        if self.do_xcom_push:
            context["ti"].xcom_push(key="alias_overlap_seconds", value=round(overlap, 3))
        version = hook.get_model_version(model_id, version_name)
        return self._publish_version(context, self._ref(model_id, version))
