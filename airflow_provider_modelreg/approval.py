"""What "approved" means for a wait: pure decisions over PAI versions, shared by the sensor and the triggers.

Two kinds of wait:

* a **named** version (``version_name``): done when it is Approved; Rejected is terminal (fail or skip);
  a version that does not exist yet is waited for.
* the **next** approved version (``version_name=None``): done when some version created after the anchor
  (``after_version``'s creation time, or ``created_after``) is Approved; the newest such version wins and
  Rejected versions are passed over.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.models import ApprovalStatus, PaiModelVersion
from airflow_provider_modelreg.validation import check_pai_model_id, check_pai_version_name

__all__ = ["ApprovalTarget", "Decision", "Outcome", "decide", "parse_created_after"]

#: How many of the newest versions one shared poll reads (one ListModelVersions page).
RECENT_PAGE_SIZE = 100


class Outcome(str, enum.Enum):
    WAITING = "waiting"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    version: PaiModelVersion | None = None


def parse_created_after(value: Any, field: str = "created_after") -> datetime | None:
    """An aware datetime or an ISO 8601 string with a time and an offset; None passes."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        if "T" not in value and " " not in value.strip():
            raise RegistryInputError(field, "must be an ISO 8601 date *with* a time, e.g. 2024-05-01T00:00:00Z", value)
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise RegistryInputError(field, "must be an ISO 8601 datetime, e.g. 2024-05-01T00:00:00Z", value) from None
    else:
        raise RegistryInputError(field, "must be an aware datetime or an ISO 8601 string", value)
    if parsed.tzinfo is None:
        raise RegistryInputError(field, "must carry a UTC offset (e.g. Z or +08:00)", value)
    return parsed.astimezone(timezone.utc)


@dataclass(frozen=True)
class ApprovalTarget:
    """What one wait is for (validated on construction: bad input fails before any request)."""

    model_id: str
    version_name: str | None = None
    after_version: str | None = None
    created_after: datetime | None = None

    def __post_init__(self) -> None:
        check_pai_model_id(self.model_id)
        if self.version_name is not None:
            check_pai_version_name(self.version_name)
            if self.after_version is not None or self.created_after is not None:
                raise RegistryInputError(
                    "version_name", "cannot be combined with after_version or created_after", self.version_name
                )
        if self.after_version is not None:
            check_pai_version_name(self.after_version, "after_version")
            if self.created_after is not None:
                raise RegistryInputError("after_version", "give at most one of after_version and created_after")

    @property
    def named(self) -> bool:
        return self.version_name is not None


def _created(version: PaiModelVersion) -> datetime:
    return version.gmt_create_time or datetime.min.replace(tzinfo=timezone.utc)


def decide(target: ApprovalTarget, versions: list[PaiModelVersion], anchor: datetime | None) -> Decision:
    """Decide over the versions seen in one poll.

    :param versions: versions of ``target.model_id`` (any order).
    :param anchor: creation time after which versions count (next-approved mode); None = any version.
    """
    if target.named:
        for version in versions:
            if version.version_name == target.version_name:
                status = version.status
                if status is ApprovalStatus.APPROVED:
                    return Decision(Outcome.APPROVED, version)
                if status is ApprovalStatus.REJECTED:
                    return Decision(Outcome.REJECTED, version)
                return Decision(Outcome.WAITING, version)
        return Decision(Outcome.WAITING)
    approved = [
        v
        for v in versions
        if v.status is ApprovalStatus.APPROVED
        and v.version_name != target.after_version
        and (anchor is None or _created(v) > anchor)
    ]
    if not approved:
        return Decision(Outcome.WAITING)
    return Decision(Outcome.APPROVED, max(approved, key=lambda v: (_created(v), v.version_name)))


def page_covers(versions: list[PaiModelVersion], target: ApprovalTarget, anchor: datetime | None) -> bool:
    """Whether the newest-versions page answers the question, or an older version must be looked at.

    Named: the version is in the page. Next-approved: the page is not full, or its oldest version is not newer
    than the anchor (so every version created after the anchor was in the page).
    """
    if target.named:
        return any(v.version_name == target.version_name for v in versions)
    if len(versions) < RECENT_PAGE_SIZE:
        return True
    return anchor is not None and min(_created(v) for v in versions) <= anchor
