"""Extra links to the vendors' consoles.

The consoles' URL formats are not documented; the defaults below are the best known formats. A connection extra
``console_url_template`` overrides them (placeholders ``{region}``, ``{workspace_id}``, ``{model_id}``,
``{version_name}``, ``{version_id}``; for a link to a model rather than a version the version placeholders are
empty).

Every task that declares a link stores one, in XCom under ``xcom_key`` (``_link_<class name>``), on every Airflow
version: the task renders the URL while it runs, from what it read (the model's own workspace, the endpoint's
region), keeps it on the running operator and pushes it to XCom when it changes (deferred, rescheduled and skipped
tries included). The UI reads it from there without the connection or the registry:

* Airflow 3 asks :meth:`_ConsoleLink.get_link` of the *running* operator when a try ends and stores the answer
  under the same key; its UI reads that XCom.
* Airflow 2's webserver asks ``get_link`` of the *deserialized* operator, which never ran and holds nothing:
  ``get_link`` then reads the XCom the try pushed (``XCom.get_value(ti_key=..., key=xcom_key)``).

The running operator always answers from what it holds (an empty string before the first link of the try), so a
try that has no link yet reads no XCom and logs no "XCom not found".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey  # type: ignore[attr-defined,unused-ignore]

__all__ = [
    "FabricEpInstanceLink",
    "FabricModelVersionLink",
    "PaiEasServiceLink",
    "PaiModelLink",
    "PaiModelVersionLink",
    "render_console_url",
    "track_links",
]

PAI_CONSOLE_TEMPLATE = (
    "https://pai.console.aliyun.com/?regionId={region}&workspaceId={workspace_id}"
    "#/modelManage/modelDetail?modelId={model_id}&versionName={version_name}"
)
PAI_MODEL_CONSOLE_TEMPLATE = (
    "https://pai.console.aliyun.com/?regionId={region}&workspaceId={workspace_id}"
    "#/modelManage/modelDetail?modelId={model_id}"
)
FABRIC_CONSOLE_TEMPLATE = (
    "https://console.huaweicloud.com/dataartsfabric/?region={region}"
    "#/workspace/{workspace_id}/models/{model_id}/versions/{version_id}"
)
PAI_EAS_CONSOLE_TEMPLATE = "https://pai.console.aliyun.com/?regionId={region}#/eas/serviceDetail/{service_name}/detail"
#: the DataArts Fabric console's address pattern for an EP service instance (as for the others: not documented)
FABRIC_EP_CONSOLE_TEMPLATE = (
    "https://console.huaweicloud.com/dataartsfabric/?region={region}"
    "#/workspace/{workspace_id}/services/instances/{instance_id}"
)
FABRIC_MODEL_CONSOLE_TEMPLATE = (
    "https://console.huaweicloud.com/dataartsfabric/?region={region}#/workspace/{workspace_id}/models/{model_id}"
)

#: Attribute of the operator where a running task keeps its rendered links (link class name -> URL).
_URLS_ATTR = "_modelreg_console_urls"


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render_console_url(template: str, ref: dict[str, Any]) -> str:
    """Fill a console URL template from a ModelVersionRef (or ModelRef) dict; unknown or missing placeholders
    become empty."""
    values = _Blank({k: "" if v is None else v for k, v in ref.items()})
    try:
        return template.format_map(values)
    except (ValueError, IndexError, AttributeError):
        return ""


def track_links(operator: BaseOperator) -> None:
    """Mark ``operator`` as one that runs and holds its links (call from its ``__init__``): its ``get_link``
    answers from what it holds, never from XCom."""
    if not isinstance(getattr(operator, _URLS_ATTR, None), dict):
        setattr(operator, _URLS_ATTR, {})


def _stored_url(ti_key: TaskInstanceKey, key: str) -> str:
    """The link a try pushed to XCom ("" when there is none)."""
    from airflow.providers.common.compat.sdk import XCom  # the SDK's on Airflow 3, airflow.models' on 2

    value = XCom.get_value(ti_key=ti_key, key=key)
    return value if isinstance(value, str) else ""


class _ConsoleLink(BaseOperatorLink):
    default_template: ClassVar[str]
    #: the default for a link to the model itself (no version known, or a listing with no version)
    model_template: ClassVar[str]

    @classmethod
    def key(cls) -> str:
        """The XCom key of the link: ``_link_<class name>``, Airflow 3's default, on every version."""
        return f"_link_{cls.__name__}"

    @property
    def xcom_key(self) -> str:
        return self.key()

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        urls = getattr(operator, _URLS_ATTR, None)
        if isinstance(urls, dict):  # the running task's operator
            return str(urls.get(type(self).__name__, ""))
        return _stored_url(ti_key, self.key())  # a deserialized one (Airflow 2's webserver)

    @classmethod
    def persist(
        cls,
        operator: BaseOperator,
        ref: dict[str, Any],
        template: str | None = None,
        *,
        context: Context | None = None,
    ) -> str:
        """Render the URL for ``ref`` (a version when it names one, else the model), keep it for this try and push
        it to XCom when it changed (a poke that sees the same thing again writes nothing).

        :param operator: the running task's operator.
        :param ref: a ModelVersionRef or ModelRef dict.
        :param template: the connection's ``console_url_template``, if any.
        :param context: the task's context (its ``ti`` pushes the XCom); None keeps the link on the operator only.
        """
        default = cls.default_template if ref.get("version_name") or ref.get("version_id") else cls.model_template
        url = render_console_url(template or default, ref)
        urls = getattr(operator, _URLS_ATTR, None)
        if not isinstance(urls, dict):
            urls = {}
            setattr(operator, _URLS_ATTR, urls)
        changed = urls.get(cls.__name__) != url
        urls[cls.__name__] = url
        ti = context.get("ti") if context is not None else None
        if changed and ti is not None:
            ti.xcom_push(key=cls.key(), value=url)
        return url

    @classmethod
    def stored(cls, operator: BaseOperator) -> str | None:
        """The URL this try keeps for the link (None: none yet)."""
        urls = getattr(operator, _URLS_ATTR, None)
        return urls.get(cls.__name__) if isinstance(urls, dict) else None


class PaiModelVersionLink(_ConsoleLink):
    """Link to the PAI console page of the model version (of the model while no version is known)."""

    name = "PAI Model Version"
    default_template = PAI_CONSOLE_TEMPLATE
    model_template = PAI_MODEL_CONSOLE_TEMPLATE


class PaiModelLink(_ConsoleLink):
    """Link to the PAI console page of the model."""

    name = "PAI Model"
    default_template = PAI_MODEL_CONSOLE_TEMPLATE
    model_template = PAI_MODEL_CONSOLE_TEMPLATE


class FabricModelVersionLink(_ConsoleLink):
    """Link to the DataArts Fabric console page of the model version (of the model while no version is known)."""

    name = "DataArts Fabric Model Version"
    default_template = FABRIC_CONSOLE_TEMPLATE
    model_template = FABRIC_MODEL_CONSOLE_TEMPLATE


class PaiEasServiceLink(_ConsoleLink):
    """Link to the PAI-EAS console page of the deployed service (``{region}``, ``{service_name}``; the connection's
    ``console_url_template`` is the registry's and does not apply)."""

    name = "PAI-EAS Service"
    default_template = PAI_EAS_CONSOLE_TEMPLATE
    model_template = PAI_EAS_CONSOLE_TEMPLATE


class FabricEpInstanceLink(_ConsoleLink):
    """Link to the DataArts Fabric console page of the deployed EP service instance: the console's address pattern
    ``https://console.huaweicloud.com/dataartsfabric/?region={region}#/workspace/{workspace_id}/services/instances/
    {instance_id}`` (``{region}``, ``{workspace_id}``, ``{instance_id}``; the connection's ``console_url_template``
    is the registry's and does not apply). It names the instance only: no token or address of the instance's own
    ``url`` is part of it."""

    name = "DataArts Fabric EP Instance"
    default_template = FABRIC_EP_CONSOLE_TEMPLATE
    model_template = FABRIC_EP_CONSOLE_TEMPLATE
