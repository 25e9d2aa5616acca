"""OpenLineage facets of the registry operators, imported only when the OpenLineage provider asks for lineage (it
needs the OpenLineage client, which a DAG file without lineage should not pay for)."""

from __future__ import annotations

from typing import Any

import attr
from airflow.providers.common.compat.openlineage.facet import RunFacet
from airflow.providers.openlineage.extractors import OperatorLineage

from airflow_provider_modelreg.lineage import fabric_ep_instance_dataset, service_dataset, version_datasets

__all__ = ["ModelVersionsRunFacet", "operator_lineage"]

#: The run facet's key in an OpenLineage run's ``facets``.
FACET_KEY = "modelreg_model_versions"


@attr.define
class ModelVersionsRunFacet(RunFacet):
    """The model versions a task read, registered, approved or deployed, with their approval status and, for a
    human decision, who made it.

    :param versions: ``{registry, model_id, version_name, version_id, approval_status, approved_by}`` each.
    """

    versions: list[dict[str, Any]] = attr.field(factory=list)


def _facet_entry(ref: dict[str, Any], approved_by: Any) -> dict[str, Any]:
    entry = {key: ref.get(key) for key in ("registry", "model_id", "version_name", "version_id", "approval_status")}
    if approved_by is not None:
        entry["approved_by"] = approved_by
    return entry


def operator_lineage(
    refs: list[dict[str, Any]],
    *,
    approved_by: Any = None,
    service: dict[str, Any] | None = None,
    instance: dict[str, Any] | None = None,
) -> OperatorLineage[Any, Any]:
    """The lineage of a task over ``refs`` (``ModelVersionRef`` dicts): each artifact in, each registry version out,
    and a run facet naming the versions. With ``service`` (an EAS service summary) or ``instance`` (a Fabric EP
    instance summary) the versions are inputs too and the service or instance is the output.

    :param refs: the versions the task worked on.
    :param approved_by: who decided (a human-in-the-loop answer), recorded in the run facet.
    :param service: the deployed EAS service (``service_name``, ``region``).
    :param instance: the deployed Fabric EP instance (``name`` or ``instance_id``, ``region``).
    """
    inputs, outputs = version_datasets(refs)
    if service is not None:
        inputs, outputs = [*inputs, *outputs], [service_dataset(service)]
    elif instance is not None:
        inputs, outputs = [*inputs, *outputs], [fabric_ep_instance_dataset(instance)]
    facets = {FACET_KEY: ModelVersionsRunFacet(versions=[_facet_entry(ref, approved_by) for ref in refs])}
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=facets)
