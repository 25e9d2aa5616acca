"""The gate's vocabulary: the reads a decision core asks for and the pages it is answered with (plain values).

Shared by the approval check (:mod:`airflow_provider_modelreg.approval`), the alias lookup
(:mod:`airflow_provider_modelreg.alias`) and the watch core: a read is hashable, so the triggerer's hub can share
one answer between every wait that asks the same question. The gate's public names are listed once, in
:mod:`airflow_provider_modelreg.approval`'s ``__all__``, which re-exports them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from airflow_provider_modelreg.errors import RegistryResponseError

if TYPE_CHECKING:
    from airflow_provider_modelreg.models import PaiModelVersion

#: Versions per page for every read of the gate (the API's maximum PageSize).
RECENT_PAGE_SIZE = 100
#: Pages of Approved versions one poll may read before the answer is called unreadable (10,000 versions).
MAX_APPROVED_PAGES = 100
#: The label key of aliases (PaiSetModelVersionAliasOperator's default).
DEFAULT_ALIAS_KEY = "alias"


def order_key(version: PaiModelVersion) -> tuple[datetime, str]:
    """The one order of "newer": creation time, then VersionName (plain string order) for equal times."""
    assert version.gmt_create_time is not None
    return version.gmt_create_time, version.version_name


# ------------------------------------------------------------------------------------------------ reads


@dataclass(frozen=True)
class ReadVersion:
    """GetModelVersion. Answer: the version, or None when that version does not exist (the model does)."""

    model_id: str
    version_name: str


@dataclass(frozen=True)
class ReadRecent:
    """ListModelVersions, unfiltered, newest first by GmtCreateTime, page ``page`` (0-based; the gate reads the
    first only). Answer: :class:`VersionPage`."""

    #: the listing's ApprovalStatus filter (None: every status)
    status: ClassVar[str | None] = None
    model_id: str
    page: int = 0


@dataclass(frozen=True)
class ReadApproved:
    """ListModelVersions with ApprovalStatus=Approved, newest first, page ``page`` (0-based). Answer: a page."""

    #: the listing's ApprovalStatus filter
    status: ClassVar[str | None] = "Approved"
    model_id: str
    page: int = 0


@dataclass(frozen=True)
class ReadPending:
    """ListModelVersions with ApprovalStatus=Pending, newest first, page ``page`` (0-based). Answer: a page."""

    #: the listing's ApprovalStatus filter
    status: ClassVar[str | None] = "Pending"
    model_id: str
    page: int = 0


@dataclass(frozen=True)
class ReadLabelled:
    """ListModelVersions with the ``Label`` filter ``label`` (a substring of a label key or value: the answer may
    hold versions that do not carry the alias), newest first, page ``page`` (0-based). Answer: a page."""

    #: the listing's ApprovalStatus filter (None: every status)
    status: ClassVar[str | None] = None
    model_id: str
    label: str
    page: int = 0


Read = ReadVersion | ReadRecent | ReadApproved | ReadPending | ReadLabelled


@dataclass(frozen=True)
class VersionPage:
    """One ListModelVersions page as the core needs it."""

    versions: tuple[PaiModelVersion, ...]
    total: int
    request_id: str | None = None


def bad_answer(field_name: str, problem: str, request_id: str | None) -> RegistryResponseError:
    """An answer the gate cannot judge: a typed error naming the field (HTTP 200: the call itself worked)."""
    return RegistryResponseError(field=field_name, problem=problem, request_id=request_id, status_code=200)


def check_created(version: PaiModelVersion, request_id: str | None) -> None:
    """Every version the gate orders has a creation time (an error naming ``GmtCreateTime``)."""
    if version.gmt_create_time is None:
        raise bad_answer("GmtCreateTime", f"version {version.version_name} has no creation time", request_id)


def page_in_order(page: VersionPage, previous: PaiModelVersion | None) -> None:
    """Newest first, as asked (the core relies on the order to stop early)."""
    last = previous
    for version in page.versions:
        check_created(version, page.request_id)
        if last is not None and order_key(version)[0] > order_key(last)[0]:
            raise bad_answer("GmtCreateTime", "versions are not listed newest first", page.request_id)
        last = version
