"""The decision core of the approval gate: what to read next and what was decided, with no I/O (sans-IO).

Every mode drives the same objects: the sensor in poke and reschedule mode through the sync shell, the
deferrable trigger and the asset watcher through the async shell (:mod:`airflow_provider_modelreg.approval_io`).
A shell asks :meth:`ApprovalCheck.next_read` what to read, performs that read and hands the answer back with
:meth:`ApprovalCheck.receive`, until :attr:`ApprovalCheck.decision` is set. The reads are plain hashable values,
so the triggerer's hub can share one answer between every wait that asks the same question.

Two kinds of wait, fixed when the wait is created:

* **named** (``version_name``): done when that version is Approved; Rejected is terminal; a version that does not
  exist yet is waited for.
* **next approved** (no ``version_name``): done when a version *newer than the anchor* is Approved; the newest
  such version wins, Rejected ones are passed over. The anchor is ``after_version`` (its GmtCreateTime and name),
  or ``created_after`` (a time), or none (the first deployment: the newest Approved version counts).

* **alias** (``alias``, a label ``alias_key=alias`` that
  :class:`~airflow_provider_modelreg.operators.pai_lifecycle.PaiSetModelVersionAliasOperator` keeps on one version):
  each poll resolves the holder (:func:`alias_holder`: the versions listed with the ``Label`` filter that carry
  exactly that label, the newest by ``(GmtCreateTime, VersionName)`` when a move briefly leaves two) and judges it:
  done when the holder is Approved; no holder, a Pending or a Rejected holder is waited past (the alias can move).

"Newer" orders versions by ``(GmtCreateTime, VersionName)``: creation time first; versions created in the same
instant are ordered by VersionName as plain strings (so with ``after_version``, a version created in the same
instant counts as newer when its name sorts after the anchor's). With ``created_after`` only the time counts and
it is strict. Any answer the gate cannot judge (an unknown or missing status, an Approved version without a Uri,
a version without a creation time where it matters, an answer about another version, a listing out of order)
raises :class:`~airflow_provider_modelreg.errors.RegistryResponseError` naming the field: the gate never opens and
never waits on an answer it cannot justify.

Completeness: Approved and Rejected are terminal in PAI, so the set of Approved versions only grows. Reads of
that set newest first (``ReadApproved``) can therefore shift items to later pages while paging (seen twice,
merged by name) but never skip one that stays Approved; the next poll sees anything approved meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.alias import AliasLookup, alias_holder, check_alias, check_alias_key, holds_alias
from airflow_provider_modelreg.approval_reads import (
    DEFAULT_ALIAS_KEY,
    MAX_APPROVED_PAGES,
    RECENT_PAGE_SIZE,
    Read,
    ReadApproved,
    ReadLabelled,
    ReadPending,
    ReadRecent,
    ReadVersion,
    VersionPage,
    order_key,
)
from airflow_provider_modelreg.approval_reads import bad_answer as _bad
from airflow_provider_modelreg.approval_reads import page_in_order as _page_in_order
from airflow_provider_modelreg.approval_status import ApprovalStatus, WaitDecision, WaitOutcome
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.renamed import renamed_class
from airflow_provider_modelreg.validation import (
    check_max_failures,
    check_pai_model_id,
    check_pai_version_name,
    check_poke_interval,
    rendered_optional,
    rendered_required,
)

if TYPE_CHECKING:
    from airflow_provider_modelreg.models import PaiModelVersion

__all__ = [
    "DEFAULT_ALIAS_KEY",
    "MAX_APPROVED_PAGES",
    "RECENT_PAGE_SIZE",
    "AliasLookup",
    "Anchor",
    "ApprovalCheck",
    "ApprovalDecision",
    "ApprovalTarget",
    "Outcome",
    "Read",
    "ReadApproved",
    "ReadLabelled",
    "ReadPending",
    "ReadRecent",
    "ReadVersion",
    "VersionPage",
    "alias_holder",
    "check_alias",
    "check_alias_key",
    "check_listed_status",
    "check_max_failures",
    "check_poke_interval",
    "holds_alias",
    "order_key",
    "parse_created_after",
    "rendered_optional",
    "rendered_required",
]


class Outcome(WaitOutcome):
    WAITING = "waiting"
    APPROVED = "approved"
    REJECTED = "rejected"


class ApprovalDecision(WaitDecision[Outcome, "PaiModelVersion"]):
    """What one poll of the approval gate decided: the Approved or Rejected version, if any."""


def parse_created_after(value: Any, field_name: str = "created_after") -> datetime | None:
    """An aware datetime or an ISO 8601 string with a time and an offset; a native None passes."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        rendered_required(value, field_name)
        if "T" not in value and " " not in value.strip():
            raise RegistryInputError(
                field_name, "must be an ISO 8601 date *with* a time, e.g. 2024-05-01T00:00:00Z", value
            )
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise RegistryInputError(
                field_name, "must be an ISO 8601 datetime, e.g. 2024-05-01T00:00:00Z", value
            ) from None
    else:
        raise RegistryInputError(field_name, "must be an aware datetime or an ISO 8601 string", value)
    if parsed.tzinfo is None:
        raise RegistryInputError(field_name, "must carry a UTC offset (e.g. Z or +08:00)", value)
    return parsed.astimezone(timezone.utc)


# ------------------------------------------------------------------------------------------------ target, anchor


@dataclass(frozen=True)
class ApprovalTarget:
    """What one wait is for (validated on construction: bad input fails before any request).

    ``named`` is the mode; it is decided by which arguments the DAG gave, never by a rendered value's truthiness.
    """

    model_id: str
    version_name: str | None = None
    after_version: str | None = None
    created_after: datetime | None = None
    alias: str | None = None
    alias_key: str = DEFAULT_ALIAS_KEY

    def __post_init__(self) -> None:
        check_pai_model_id(self.model_id)
        if self.alias is not None:
            check_alias(self.alias, self.alias_key)
            given = [n for n in ("version_name", "after_version", "created_after") if getattr(self, n) is not None]
            if given:
                raise RegistryInputError("alias", f"cannot be combined with {given[0]}: give one of them", self.alias)
        else:
            check_alias_key(self.alias_key)
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

    @property
    def label(self) -> tuple[str, str] | None:
        """The alias as a label ``(key, value)``; None without an alias."""
        return None if self.alias is None else (self.alias_key, self.alias)

    def describe(self) -> str:
        if self.alias is not None:
            return f"the Approved holder of alias {self.alias_key}={self.alias}"
        if self.version_name is not None:
            return f"version {self.version_name}"
        if self.after_version is not None:
            return f"the next Approved version after {self.after_version}"
        if self.created_after is not None:
            return f"the next Approved version created after {self.created_after.isoformat()}"
        return "the newest Approved version"


@dataclass(frozen=True)
class Anchor:
    """Versions count when newer than this: ``(created, name)`` with a name, ``created`` alone (strict) without."""

    created: datetime
    version_name: str | None = None

    def precedes(self, version: PaiModelVersion) -> bool:
        created = version.gmt_create_time
        assert created is not None  # checked by the caller
        if self.version_name is None:
            return created > self.created
        return (created, version.version_name) > (self.created, self.version_name)


def _judged_status(version: PaiModelVersion, request_id: str | None) -> ApprovalStatus:
    status = version.status
    if status is None:
        raise _bad(
            "ApprovalStatus",
            f"version {version.version_name} has status {version.approval_status!r}; "
            "expected Pending, Approved or Rejected",
            request_id,
        )
    return status


def _check_deployable(version: PaiModelVersion, request_id: str | None) -> None:
    if not (version.uri or "").strip():
        raise _bad("Uri", f"version {version.version_name} is Approved but has no Uri to deploy", request_id)


def _status_text(version: PaiModelVersion) -> str:
    return f"{version.version_name} ({version.approval_status})"


# ------------------------------------------------------------------------------------------------ one poll


@dataclass
class ApprovalCheck:
    """One poll of one wait. Create it with what is already known (the anchor, once resolved), then drive it.

    :param target: the wait.
    :param anchor: the resolved anchor from an earlier poll of the same wait (None: resolve it if needed).
    """

    target: ApprovalTarget
    anchor: Anchor | None = None
    decision: ApprovalDecision | None = None
    _pending: Read | None = None
    _best: PaiModelVersion | None = None
    _last: PaiModelVersion | None = None
    _alias: AliasLookup | None = None

    def __post_init__(self) -> None:
        target = self.target
        if target.alias is not None:
            self._alias = AliasLookup(target.model_id, target.alias_key, target.alias)
            self._pending = self._alias.next_read()
        elif target.named:
            self._pending = ReadRecent(target.model_id)
        elif self.anchor is None and target.after_version is not None:
            self._pending = ReadVersion(target.model_id, target.after_version)
        else:
            if self.anchor is None and target.created_after is not None:
                self.anchor = Anchor(target.created_after)
            self._pending = ReadApproved(target.model_id, 0)

    def next_read(self) -> Read | None:
        """The read to perform next, or None once :attr:`decision` is set."""
        return self._pending

    def receive(self, read: Read, answer: Any) -> None:
        """Feed the answer to :meth:`next_read`'s read (see each read type for the answer's type)."""
        if read != self._pending:
            raise RuntimeError(f"answer for {read!r} while waiting for {self._pending!r}")
        self._pending = None
        if isinstance(read, ReadLabelled) and self._alias is not None:
            self._on_labelled(self._alias, read, answer)
        elif isinstance(read, ReadRecent):
            self._on_recent(answer)
        elif isinstance(read, ReadVersion):
            if self.target.named:
                self._on_named_version(answer)
            else:
                self._on_anchor(answer)
        elif isinstance(read, ReadApproved):
            self._on_approved(read, answer)
        else:
            raise RuntimeError(f"the gate never asks {read!r}")

    def _decide(self, outcome: Outcome, version: PaiModelVersion | None, outlook: str) -> None:
        self.decision = ApprovalDecision(outcome, version, outlook)

    # -- named

    def _judge_named(self, version: PaiModelVersion, request_id: str | None) -> None:
        status = _judged_status(version, request_id)
        if status is ApprovalStatus.APPROVED:
            _check_deployable(version, request_id)
            self._decide(Outcome.APPROVED, version, f"{version.version_name} is Approved")
        elif status is ApprovalStatus.REJECTED:
            self._decide(Outcome.REJECTED, version, f"{version.version_name} is Rejected")
        else:
            self._decide(Outcome.WAITING, version, f"{version.version_name} is {status.value}")

    def _on_recent(self, page: VersionPage) -> None:
        name = self.target.version_name
        for version in page.versions:
            if version.version_name == name:
                self._judge_named(version, page.request_id)
                return
        if len(page.versions) < RECENT_PAGE_SIZE and page.total <= len(page.versions):
            # the page holds every version of the model: this one does not exist yet
            self._decide(Outcome.WAITING, None, f"{name} does not exist yet")
            return
        assert name is not None
        self._pending = ReadVersion(self.target.model_id, name)

    def _on_named_version(self, version: PaiModelVersion | None) -> None:
        name = self.target.version_name
        if version is None:
            self._decide(Outcome.WAITING, None, f"{name} does not exist yet")
            return
        assert name is not None
        check_answer_is_about(version, name)
        self._judge_named(version, version.request_id)

    # -- alias

    def _on_labelled(self, lookup: AliasLookup, read: ReadLabelled, page: VersionPage) -> None:
        lookup.receive(read, page)
        if not lookup.done:
            self._pending = lookup.next_read()
            return
        holder = lookup.holder
        label = f"{lookup.alias_key}={lookup.alias}"
        if holder is None:
            self._decide(Outcome.WAITING, None, f"no version holds {label}")
            return
        status = _judged_status(holder, lookup.request_id)
        if status is ApprovalStatus.APPROVED:
            _check_deployable(holder, lookup.request_id)
            self._decide(Outcome.APPROVED, holder, f"{label} is on {holder.version_name}, Approved")
        else:  # Pending or Rejected: the alias can still move to an Approved version
            self._decide(Outcome.WAITING, None, f"{label} is on {holder.version_name}, {status.value}")

    # -- next approved

    def _on_anchor(self, version: PaiModelVersion | None) -> None:
        name = self.target.after_version
        if version is None:
            raise RegistryInputError(
                "after_version", f"names no version of model {self.target.model_id} (it does not exist)", name
            )
        if version.version_name != name:
            raise _bad(
                "VersionName",
                f"asked for version {name}, the answer is about {version.version_name}",
                version.request_id,
            )
        if version.gmt_create_time is None:
            raise _bad(
                "GmtCreateTime",
                f"after_version {name} has no creation time, so no version can be judged newer than it",
                version.request_id,
            )
        self.anchor = Anchor(version.gmt_create_time, version.version_name)
        self._pending = ReadApproved(self.target.model_id, 0)

    def _on_approved(self, read: ReadApproved, page: VersionPage) -> None:
        _page_in_order(page, self._last)
        for version in page.versions:
            check_listed_status(version, ApprovalStatus.APPROVED, page.request_id)
            if self.anchor is not None and not self.anchor.precedes(version):
                continue
            if self._best is None or order_key(version) > order_key(self._best):
                self._best = version
        if page.versions:
            self._last = page.versions[-1]
        full = len(page.versions) >= RECENT_PAGE_SIZE
        best = self._best
        # Later pages are older: they matter only for a version tied with the best one's creation time, or
        # (no best yet) while this page was entirely newer than the anchor.
        last_created = order_key(page.versions[-1])[0] if page.versions else None
        more = (
            full
            and last_created is not None
            and (
                (best is not None and last_created == order_key(best)[0])
                # versions created in the anchor's instant may still sort after it by name
                or (best is None and self.anchor is not None and last_created >= self.anchor.created)
            )
        )
        if more:
            if read.page + 1 >= MAX_APPROVED_PAGES:
                raise _bad(
                    "TotalCount",
                    f"more than {MAX_APPROVED_PAGES} pages of Approved versions to read in one poll",
                    page.request_id,
                )
            self._pending = ReadApproved(read.model_id, read.page + 1)
            return
        if best is None:
            self._decide(Outcome.WAITING, None, f"no Approved version newer than the anchor ({_anchor_text(self)})")
            return
        _check_deployable(best, page.request_id)
        self._decide(Outcome.APPROVED, best, f"{best.version_name} is Approved")


def _anchor_text(check: ApprovalCheck) -> str:
    anchor = check.anchor
    if anchor is None:
        return "none"
    if anchor.version_name is not None:
        return anchor.version_name
    return anchor.created.isoformat()


def check_listed_status(version: PaiModelVersion, status: ApprovalStatus, request_id: str | None) -> None:
    """A version in a listing filtered by ``status`` must have it (raises naming ``ApprovalStatus``)."""
    if version.status is not status:
        raise _bad(
            "ApprovalStatus",
            f"version {version.version_name} with status {version.approval_status!r} "
            f"in a listing of {status.value} versions",
            request_id,
        )


def check_answer_is_about(version: PaiModelVersion, version_name: str) -> None:
    """A GetModelVersion answer must be about the version asked for (raises naming ``VersionName``)."""
    if version.version_name != version_name:
        raise _bad(
            "VersionName",
            f"asked for version {version_name}, the answer is about {version.version_name}",
            version.request_id,
        )


def check_deployable(version: PaiModelVersion, request_id: str | None = None) -> None:
    """An Approved version must carry a Uri (raises :class:`RegistryResponseError` naming ``Uri``)."""
    _check_deployable(version, request_id)


def describe_page(read: Read, answer: Any) -> str:
    """One line on what a shared read saw (the newest version and its status), for the hub's INFO log."""
    if isinstance(answer, VersionPage):
        kind = {ReadApproved: "Approved versions", ReadPending: "Pending versions"}.get(type(read), "versions")
        if isinstance(read, ReadLabelled):
            kind = f"versions labelled like {read.label!r}"
        first = answer.versions[0] if answer.versions else None
        shown = _status_text(first) if first else "none"
        page = getattr(read, "page", 0)
        if page:  # a later page's first item is not the model's newest version
            return f"{answer.total} {kind}; page {page + 1} starts at {shown}"
        return f"{answer.total} {kind}; newest {shown}"
    if answer is None:
        return "does not exist"
    from airflow_provider_modelreg.models import PaiModelVersion  # loaded: a registry answered

    assert isinstance(answer, PaiModelVersion)
    return _status_text(answer)


def __getattr__(name: str) -> Any:  # the deprecated name: two modules had a class called Decision
    return renamed_class(globals(), name, {"Decision": "ApprovalDecision"})
