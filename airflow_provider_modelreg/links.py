"""Extra links to the vendors' consoles.

The consoles' URL formats are not documented; the defaults below are the best known formats. A connection extra
``console_url_template`` overrides them (placeholders ``{region}``, ``{workspace_id}``, ``{model_id}``,
``{version_name}``, ``{version_id}``; for a link to a model rather than a version the version placeholders are
empty).

Every task that declares a link stores one: the task renders the URL while it runs, from what it read (the model's
own workspace, the endpoint's region), and keeps it on the operator; Airflow asks :meth:`_ConsoleLink.get_link`
for it when the try ends (deferred, rescheduled and skipped tries included) and stores it in XCom under
``xcom_key`` (``_link_<class name>``), where the UI reads it: the UI needs neither the connection nor the
registry to show it. ``get_link`` never reads XCom itself, so a try that has no link yet logs no "XCom not found".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey  # type: ignore[attr-defined,unused-ignore]

__all__ = [
    "FabricModelVersionLink",
    "PaiModelLink",
    "PaiModelVersionLink",
    "render_console_url",
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


class _ConsoleLink(BaseOperatorLink):
    default_template: ClassVar[str]
    #: the default for a link to the model itself (no version known, or a listing with no version)
    model_template: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        urls = getattr(operator, _URLS_ATTR, None)
        return str(urls.get(type(self).__name__, "")) if isinstance(urls, dict) else ""

    @classmethod
    def persist(cls, operator: BaseOperator, ref: dict[str, Any], template: str | None = None) -> str:
        """Render the URL for ``ref`` (a version when it names one, else the model) and keep it for this try.

        :param operator: the running task's operator (Airflow reads the link from it when the try ends).
        :param ref: a ModelVersionRef or ModelRef dict.
        :param template: the connection's ``console_url_template``, if any.
        """
        default = cls.default_template if ref.get("version_name") or ref.get("version_id") else cls.model_template
        url = render_console_url(template or default, ref)
        urls = getattr(operator, _URLS_ATTR, None)
        if not isinstance(urls, dict):
            urls = {}
            setattr(operator, _URLS_ATTR, urls)
        urls[cls.__name__] = url
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
