"""hooks of airflow-provider-modelreg.

The few constants that DAG files need when they build tasks live here, not in the hook modules: operators and
sensors read them at DAG-parse time without importing the hooks (and with them the transport, httpx and the
pydantic models), which load only when a task runs.
"""

__all__ = ["FABRIC_DEFAULT_CONN_ID", "PAI_DEFAULT_CONN_ID", "PICKS"]

#: The connection id of :class:`~airflow_provider_modelreg.hooks.pai.PaiModelRegistryHook` when none is given.
PAI_DEFAULT_CONN_ID = "pai_default"
#: The connection id of :class:`~airflow_provider_modelreg.hooks.fabric.FabricModelRegistryHook` when none is given.
FABRIC_DEFAULT_CONN_ID = "fabric_default"
#: How a Fabric version name that several versions share is resolved: refuse it (``unique``) or take the newest.
PICKS = ("unique", "newest")
