"""Extra links to the vendors' consoles.

The consoles' URL formats are not documented; the defaults below are the best known formats. A connection extra
``console_url_template`` overrides them (placeholders ``{region}``, ``{workspace_id}``, ``{model_id}``,
``{version_name}``, ``{version_id}``). The link URL is rendered when the task runs, from the ModelVersionRef, and
persisted in XCom: the UI needs neither the connection nor the registry to show it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey  # type: ignore[attr-defined,unused-ignore]

__all__ = ["FabricConsoleLink", "PaiModelVersionLink", "render_console_url"]

PAI_CONSOLE_TEMPLATE = (
    "https://pai.console.aliyun.com/?regionId={region}&workspaceId={workspace_id}"
    "#/modelManage/modelDetail?modelId={model_id}&versionName={version_name}"
)
FABRIC_CONSOLE_TEMPLATE = (
    "https://console.huaweicloud.com/dataartsfabric/?region={region}"
    "#/workspace/{workspace_id}/models/{model_id}/versions/{version_id}"
)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render_console_url(template: str, ref: dict[str, Any]) -> str:
    """Fill a console URL template from a ModelVersionRef dict; unknown or missing placeholders become empty."""
    values = _Blank({k: "" if v is None else v for k, v in ref.items()})
    try:
        return template.format_map(values)
    except (ValueError, IndexError, AttributeError):
        return ""


class _ConsoleLink(BaseOperatorLink):
    xcom_key: ClassVar[str]
    default_template: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value.get("url", "")) if isinstance(value, dict) else ""

    @classmethod
    def persist(cls, context: Context, ref: dict[str, Any], template: str | None = None) -> None:
        """Render the URL for ``ref`` and store it for the UI."""
        url = render_console_url(template or cls.default_template, ref)
        context["ti"].xcom_push(key=cls.xcom_key, value={"url": url})


class PaiModelVersionLink(_ConsoleLink):
    """Link to the PAI console page of the model version."""

    name = "PAI Model Version"
    xcom_key = "modelreg_pai_console"
    default_template = PAI_CONSOLE_TEMPLATE


class FabricConsoleLink(_ConsoleLink):
    """Link to the DataArts Fabric console page of the model."""

    name = "DataArts Fabric Model"
    xcom_key = "modelreg_fabric_console"
    default_template = FABRIC_CONSOLE_TEMPLATE
