"""Aliases: a PAI label ``alias_key=alias`` kept on one version (sans-IO, driven like the approval check).

:class:`~airflow_provider_modelreg.operators.pai_lifecycle.PaiSetModelVersionAliasOperator` moves the label; the
sensor, the list operator and the asset watcher resolve who holds it now with :class:`AliasLookup`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.approval_reads import (
    DEFAULT_ALIAS_KEY,
    MAX_APPROVED_PAGES,
    RECENT_PAGE_SIZE,
    ReadLabelled,
    bad_answer,
    check_created,
    order_key,
)
from airflow_provider_modelreg.validation import check_pai_label_part, rendered_required

if TYPE_CHECKING:
    from airflow_provider_modelreg.approval_reads import (
        Read,
        VersionPage,
    )
    from airflow_provider_modelreg.models import PaiModelVersion

__all__ = ["AliasLookup", "alias_holder", "check_alias", "check_alias_key", "holds_alias"]


def check_alias_key(alias_key: Any) -> str:
    """``alias_key`` is a PAI label key (typed error naming ``alias_key``)."""
    return check_pai_label_part(rendered_required(alias_key, "alias_key"), "alias_key")


def check_alias(alias: Any, alias_key: Any = DEFAULT_ALIAS_KEY) -> tuple[str, str]:
    """An alias and its key as a label ``(key, value)``: each a PAI label key or value (at most 128 bytes, no ``=``
    or ``,``, no placeholder such as ``'None'``); a typed error naming ``alias`` or ``alias_key``."""
    key = check_alias_key(alias_key)
    return key, check_pai_label_part(rendered_required(alias, "alias"), "alias")


def holds_alias(version: PaiModelVersion, alias_key: str, alias: str) -> bool:
    """Whether ``version`` carries exactly the label ``alias_key=alias`` (the ``Label`` filter only narrows)."""
    return any(label.key == alias_key and label.value == alias for label in version.labels or ())


def alias_holder(
    versions: Iterable[PaiModelVersion], alias_key: str, alias: str, request_id: str | None = None
) -> PaiModelVersion | None:
    """The version that holds the alias: of the versions carrying exactly ``alias_key=alias``, the newest by
    ``(GmtCreateTime, VersionName)`` (whatever order they came in; two hold it while the alias moves); None when
    none does. A holder without a creation time cannot be ordered: an error naming ``GmtCreateTime``."""
    holders = [version for version in versions if holds_alias(version, alias_key, alias)]
    for version in holders:
        check_created(version, request_id)
    return max(holders, key=order_key, default=None)


@dataclass
class AliasLookup:
    """Which version holds an alias now (sans-IO, driven like :class:`ApprovalCheck`): every page of the
    ``Label``-filtered listing, then :func:`alias_holder`. :attr:`done` once read; :attr:`holder` is the answer."""

    model_id: str
    alias_key: str
    alias: str
    done: bool = False
    holder: PaiModelVersion | None = None
    request_id: str | None = None
    _pending: ReadLabelled | None = None
    _seen: dict[str, PaiModelVersion] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pending = ReadLabelled(self.model_id, self.alias, 0)

    def next_read(self) -> Read | None:
        return self._pending

    def receive(self, read: Read, answer: Any) -> None:
        if read != self._pending or not isinstance(read, ReadLabelled):
            raise RuntimeError(f"answer for {read!r} while waiting for {self._pending!r}")
        self._pending = None
        page: VersionPage = answer
        for version in page.versions:
            if holds_alias(version, self.alias_key, self.alias):
                self._seen[version.version_name] = version  # a version shifted to the next page: seen twice
        self.request_id = page.request_id
        if len(page.versions) >= RECENT_PAGE_SIZE:
            if read.page + 1 >= MAX_APPROVED_PAGES:
                raise bad_answer(
                    "TotalCount",
                    f"more than {MAX_APPROVED_PAGES} pages of versions labelled {self.alias!r} to read in one poll",
                    page.request_id,
                )
            self._pending = ReadLabelled(self.model_id, self.alias, read.page + 1)
            return
        listed = read.page * RECENT_PAGE_SIZE + len(page.versions)
        if page.total > listed:  # a short page before the end (a server capping PageSize): a holder could be missed
            raise bad_answer(
                "TotalCount",
                f"{page.total} versions labelled {self.alias!r}, but the listing ended after {listed}",
                page.request_id,
            )
        self.holder = alias_holder(self._seen.values(), self.alias_key, self.alias, page.request_id)
        self.done = True
