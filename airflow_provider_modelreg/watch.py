"""The asset watcher's core, with no I/O: what one poll reads, what it saw, and what each watcher announces.

The watcher's cost and state do not grow with the model's history. PAI versions start Pending (or are created
with a status), Approved and Rejected are terminal, and ListModelVersions sorts by GmtCreateTime only. So a
version can become Approved in exactly two ways a watcher has to see:

* it is **created** after the newest version the watcher has seen (whatever its status): a poll reads the
  unfiltered listing newest first until it reaches that version (:class:`~airflow_provider_modelreg.approval.
  ReadRecent`, one page in steady state);
* it **leaves Pending**: a poll reads the Pending listing (:class:`~airflow_provider_modelreg.approval.ReadPending`,
  one page while fewer than 100 versions wait) and asks GetModelVersion about each version the watcher knew as
  Pending that is no longer listed (one request per decision made since the last poll).

A watcher's state (:class:`WatchCursor`) is therefore the newest version seen, the Pending names and the newest
version announced: a few hundred bytes, plus the Pending names. :class:`WatchPoll` plans one poll for a merged
cursor (one poll serves every watcher of a model in a triggerer) and produces an :class:`Observation`;
:func:`apply_observation` turns an observation into one watcher's announcements and next cursor.

``announce="newer"`` (the default) announces a version only when it is newer, by ``(GmtCreateTime, VersionName)``,
than every version the watcher announced or knew Approved when it started: a late approval of an older version is
reported (``skipped``) and not announced, as the approval gate would pass it over. ``announce="every"`` announces
every version that becomes Approved, oldest first.

A watcher of an **alias** (``alias=``, a label ``alias_key=alias`` kept on one version) follows the holder instead:
each poll resolves it (:class:`~airflow_provider_modelreg.approval.AliasLookup`: the newest holder while a move
leaves two) and :func:`apply_alias` announces it when it is Approved and is not the version the watcher announced
last. Its state (:class:`AliasCursor`) is that version's name.
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from airflow_provider_modelreg.approval import (
    MAX_APPROVED_PAGES,
    RECENT_PAGE_SIZE,
    Read,
    ReadApproved,
    ReadPending,
    ReadRecent,
    ReadVersion,
    VersionPage,
    check_answer_is_about,
    check_listed_status,
    order_key,
)
from airflow_provider_modelreg.approval_reads import bad_answer as _bad
from airflow_provider_modelreg.approval_reads import page_in_order as _page_in_order
from airflow_provider_modelreg.models import ApprovalStatus, PaiModelVersion
from airflow_provider_modelreg.validation import check_choice

__all__ = [
    "ANNOUNCE_MODES",
    "AliasCursor",
    "AliasResult",
    "Observation",
    "StateIdentity",
    "WatchCursor",
    "WatchIdentity",
    "WatchPoll",
    "WatchResult",
    "apply_alias",
    "apply_observation",
    "check_announce",
    "merge_alias_cursors",
    "merge_cursors",
]

#: The watcher's announce modes (see the module docstring).
ANNOUNCE_MODES = ("newer", "every")
#: State format written by this version.
STATE_VERSION = 3

Key = tuple[datetime, str]


def check_announce(value: Any) -> str:
    """``announce`` must be one of :data:`ANNOUNCE_MODES` (typed error naming the field)."""
    return check_choice(value, "announce", ANNOUNCE_MODES)


class StateIdentity(abc.ABC):
    """Who a watcher's stored state belongs to (the base of each watcher's identity): a state is stored with its
    format's version and :meth:`to_json`, and a state of another format or another identity is never read as ours.
    """

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]:
        """The identity as stored with the state."""

    def digest(self) -> str:
        """A short hash of :meth:`to_json`, for the state key (it tells connections and endpoints apart)."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def state(self, version: int, fields: dict[str, Any]) -> dict[str, Any]:
        """A cursor's ``fields`` as stored: in format ``version``, for this identity."""
        return {"v": version, "identity": self.to_json(), **fields}

    def stored_fields(self, value: Any, version: int) -> dict[str, Any] | None:
        """A stored state when it is in format ``version`` and this identity's; else None."""
        if not isinstance(value, dict) or value.get("v") != version:
            return None
        if value.get("identity") != self.to_json():
            return None
        return value


@dataclass(frozen=True)
class WatchIdentity(StateIdentity):
    """What a watcher's state describes: one model seen through one connection and endpoint.

    Its :attr:`state_key` namespaces the state in an asset's store, so two watchers on one asset (two models, or
    one model through two connections or regions) never share a state; the stored state carries the identity
    too, and a state of another identity is never read as ours.
    """

    conn_id: str
    endpoint: str
    model_id: str
    #: the label ``(key, value)`` an alias watcher follows (None: every approval); part of the identity only when
    #: set, so the state of a watcher without it keeps its key
    alias: tuple[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"conn_id": self.conn_id, "endpoint": self.endpoint, "model_id": self.model_id}
        if self.alias is not None:
            out["alias"] = list(self.alias)
        return out

    @property
    def state_key(self) -> str:
        readable = f"modelreg_pai_watch:{self.model_id}"
        if self.alias is not None:
            readable = f"modelreg_pai_alias:{self.model_id}"
        # model ids are short ([A-Za-z0-9-]); the hash tells connections and endpoints apart
        return f"{readable[:150]}:{self.digest()}"


def _key_json(key: Key | None) -> list[str] | None:
    return None if key is None else [key[0].isoformat(), key[1]]


def _key_from(value: Any) -> Key | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError("a key is [iso time, name]")
    created = datetime.fromisoformat(value[0])
    if created.tzinfo is None:
        raise ValueError("a key's time carries its offset")
    return created, value[1]


@dataclass(frozen=True)
class WatchCursor:
    """One watcher's state.

    :param seen: the newest version (``(GmtCreateTime, VersionName)``) the watcher has seen; versions created
        after it are read on the next poll. None: nothing seen yet (only in a merged cursor of new watchers).
    :param pending: names of the versions that were Pending at the last poll.
    :param newest: the newest version announced, or known Approved when the watcher started (``announce="newer"``
        announces only versions newer than it).
    """

    seen: Key | None
    pending: frozenset[str] = frozenset()
    newest: Key | None = None

    def to_json(self, identity: WatchIdentity) -> dict[str, Any]:
        fields = {"seen": _key_json(self.seen), "pending": sorted(self.pending), "newest": _key_json(self.newest)}
        return identity.state(STATE_VERSION, fields)

    @classmethod
    def from_json(cls, value: Any, identity: WatchIdentity) -> WatchCursor | None:
        """The stored cursor of ``identity``; None when nothing usable is stored or it is another watcher's."""
        stored = identity.stored_fields(value, STATE_VERSION)
        if stored is None:
            return None
        pending = stored.get("pending")
        if not isinstance(pending, list) or not all(isinstance(name, str) for name in pending):
            return None
        try:
            return cls(_key_from(stored.get("seen")), frozenset(pending), _key_from(stored.get("newest")))
        except (ValueError, TypeError):
            return None


def merge_cursors(cursors: Iterable[WatchCursor | None]) -> WatchCursor | None:
    """One cursor a poll can serve every watcher with: the oldest ``seen``, every Pending name.

    None when no watcher has a state yet (a first start: the poll only finds where the model stands)."""
    found = [c for c in cursors if c is not None]
    if not found:
        return None
    seen = [c.seen for c in found if c.seen is not None]
    oldest = min(seen) if seen else None
    return WatchCursor(oldest, frozenset().union(*(c.pending for c in found)))


@dataclass(frozen=True)
class Observation:
    """What one poll saw: where the model stands and the versions found Approved since the merged cursor.

    :param seen: the newest version of the model (None: the model has no versions).
    :param pending: every version Pending now.
    :param approved: versions found Approved (created after the merged ``seen``, or left Pending), oldest first.
    :param newest_approved: the newest Approved version (read only when a watcher starts without state).
    :param refs: ModelVersionRef dicts of ``approved``, by name (filled in by the shell after the poll).
    :param basis: the merged cursor the poll was made for (None: for watchers without state only).
    :param read_newest_approved: whether ``newest_approved`` was read (a watcher without state needs it).
    """

    seen: Key | None
    pending: frozenset[str]
    approved: tuple[PaiModelVersion, ...] = ()
    newest_approved: Key | None = None
    refs: dict[str, dict[str, Any]] = field(default_factory=dict)
    basis: WatchCursor | None = None
    read_newest_approved: bool = True

    def covers(self, cursor: WatchCursor | None) -> bool:
        """Whether this poll read everything ``cursor`` needs: the versions created after its ``seen`` and every
        name it knew as Pending. A watcher that joined after the poll was planned (its cursor was not merged in)
        must not take it: versions it alone was waiting for would be lost. It takes the next one instead."""
        if cursor is None:
            return self.read_newest_approved
        basis = self.basis
        if basis is None or not cursor.pending <= basis.pending:
            return False
        if cursor.seen is None:
            return basis.seen is None
        return basis.seen is not None and basis.seen <= cursor.seen


@dataclass
class WatchPoll:
    """One poll for a merged cursor (sans-IO: drive it with :func:`~airflow_provider_modelreg.approval_io.adrive`).

    :param model_id: the model.
    :param cursor: the merged cursor of the watchers served (None: every watcher starts without state).
    :param need_newest_approved: also read the newest Approved version (a watcher starts without state).
    """

    model_id: str
    cursor: WatchCursor | None
    need_newest_approved: bool = False
    observation: Observation | None = None
    _queue: list[Read] = field(default_factory=list)
    _stage: str = "recent"
    _last: PaiModelVersion | None = None
    _newest: Key | None = None
    _created: dict[str, PaiModelVersion] = field(default_factory=dict)
    _pending_now: set[str] = field(default_factory=set)
    _approved: dict[str, PaiModelVersion] = field(default_factory=dict)
    _newest_approved: Key | None = None

    def __post_init__(self) -> None:
        self._queue = [ReadRecent(self.model_id, 0)]

    def next_read(self) -> Read | None:
        return self._queue[0] if self._queue else None

    def receive(self, read: Read, answer: Any) -> None:
        if not self._queue or read != self._queue[0]:
            raise RuntimeError(f"answer for {read!r} while waiting for {self.next_read()!r}")
        self._queue.pop(0)
        if isinstance(read, ReadRecent):
            self._on_recent(read, answer)
        elif isinstance(read, ReadPending):
            self._on_pending(read, answer)
        elif isinstance(read, ReadApproved):
            self._on_newest_approved(answer)
        elif isinstance(read, ReadVersion):
            self._on_version(read, answer)
        else:
            raise RuntimeError(f"the watcher never asks {read!r}")
        if not self._queue and self.observation is None:
            self._finish()

    def _next_page(self, read: ReadRecent | ReadPending, page: VersionPage, what: str) -> bool:
        if len(page.versions) < RECENT_PAGE_SIZE:
            return False
        if read.page + 1 >= MAX_APPROVED_PAGES:
            raise _bad("TotalCount", f"more than {MAX_APPROVED_PAGES} pages of {what} to read in one poll", None)
        return True

    def _on_recent(self, read: ReadRecent, page: VersionPage) -> None:
        _page_in_order(page, self._last)
        if page.versions:
            self._last = page.versions[-1]
        seen = None if self.cursor is None else self.cursor.seen
        reached = False
        for version in page.versions:
            key = order_key(version)
            if self._newest is None or key > self._newest:
                self._newest = key
            if seen is not None and key <= seen:
                reached = True
                continue
            self._created.setdefault(version.version_name, version)
        if seen is not None and not reached and self._next_page(read, page, "versions created since the last poll"):
            self._queue.insert(0, ReadRecent(self.model_id, read.page + 1))
            return
        # where the model stands is known; now what is waiting for a decision
        self._queue.append(ReadPending(self.model_id, 0))
        if self.need_newest_approved:
            self._queue.append(ReadApproved(self.model_id, 0))

    def _on_pending(self, read: ReadPending, page: VersionPage) -> None:
        for version in page.versions:
            check_listed_status(version, ApprovalStatus.PENDING, page.request_id)
            self._pending_now.add(version.version_name)
        if self._next_page(read, page, "Pending versions"):
            self._queue.insert(0, ReadPending(self.model_id, read.page + 1))
            return
        # versions that were Pending (at the last poll, or in this poll's first read) and are not listed now:
        # decided since, or shifted between pages while we read; GetModelVersion tells which
        was = set() if self.cursor is None else set(self.cursor.pending)
        was |= {n for n, v in self._created.items() if v.status is ApprovalStatus.PENDING}
        for name in sorted(was - self._pending_now):
            self._queue.append(ReadVersion(self.model_id, name))

    def _on_newest_approved(self, page: VersionPage) -> None:
        _page_in_order(page, None)
        for version in page.versions:
            check_listed_status(version, ApprovalStatus.APPROVED, page.request_id)
        if page.versions:
            self._newest_approved = order_key(page.versions[0])

    def _on_version(self, read: ReadVersion, version: PaiModelVersion | None) -> None:
        if version is None:
            return  # deleted while Pending: nothing to announce
        check_answer_is_about(version, read.version_name)
        status = version.status
        if status is None:
            raise _bad(
                "ApprovalStatus",
                f"version {version.version_name} has no known approval status ({version.approval_status!r})",
                version.request_id,
            )
        if status is ApprovalStatus.PENDING:
            self._pending_now.add(version.version_name)  # shifted between pages while we read
        elif status is ApprovalStatus.APPROVED:
            order_key(version)  # a creation time is required to order it
            self._approved[version.version_name] = version

    def _finish(self) -> None:
        for name, version in self._created.items():
            if version.status is ApprovalStatus.APPROVED:
                self._approved.setdefault(name, version)
            elif version.status is None:
                raise _bad(
                    "ApprovalStatus",
                    f"version {name} has no known approval status ({version.approval_status!r})",
                    version.request_id,
                )
        approved = tuple(sorted(self._approved.values(), key=order_key))
        self.observation = Observation(
            self._newest,
            frozenset(self._pending_now),
            approved,
            self._newest_approved,
            basis=self.cursor,
            read_newest_approved=self.need_newest_approved,
        )


@dataclass(frozen=True)
class WatchResult:
    """What one watcher does with one observation."""

    cursor: WatchCursor
    announce: tuple[PaiModelVersion, ...] = ()
    skipped: tuple[PaiModelVersion, ...] = ()  # Approved, but older than a version announced (``newer`` mode)


def start_cursor(start_after: datetime | None) -> WatchCursor | None:
    """The cursor of a watcher with no stored state: None (take the model as it stands), or, with
    ``start_after``, one that makes the first poll announce the versions created after it and Approved."""
    if start_after is None:
        return None
    return WatchCursor((start_after, ""), frozenset(), None)


def apply_observation(cursor: WatchCursor | None, obs: Observation, *, announce: str = "newer") -> WatchResult:
    """One watcher's announcements and next cursor for an observation of a poll made for a merged cursor.

    ``cursor`` None: the watcher starts without state; nothing is announced, the model as it stands is known.
    """
    if cursor is None:
        return WatchResult(WatchCursor(obs.seen, obs.pending, obs.newest_approved))
    mine = []
    for version in obs.approved:
        key = order_key(version)
        if version.version_name in cursor.pending or (cursor.seen is None or key > cursor.seen):
            mine.append(version)
    newest = cursor.newest
    out: list[PaiModelVersion] = []
    skipped: list[PaiModelVersion] = []
    for version in mine:  # oldest first
        key = order_key(version)
        if announce == "newer" and newest is not None and key <= newest:
            skipped.append(version)
            continue
        out.append(version)
        newest = key if newest is None or key > newest else newest
    seen = obs.seen if cursor.seen is None or (obs.seen is not None and obs.seen > cursor.seen) else cursor.seen
    return WatchResult(replace(cursor, seen=seen, pending=obs.pending, newest=newest), tuple(out), tuple(skipped))


# ------------------------------------------------------------------------------------------------ alias watchers


@dataclass(frozen=True)
class AliasCursor:
    """An alias watcher's state: the version it announced last, or found holding the alias Approved when it
    started (None: none yet; the next Approved holder is announced)."""

    holder: str | None = None

    def to_json(self, identity: WatchIdentity) -> dict[str, Any]:
        return identity.state(STATE_VERSION, {"alias_holder": self.holder})

    @classmethod
    def from_json(cls, value: Any, identity: WatchIdentity) -> AliasCursor | None:
        """The stored cursor of ``identity``; None when nothing usable is stored or it is another watcher's."""
        stored = identity.stored_fields(value, STATE_VERSION)
        if stored is None or identity.alias is None or "alias_holder" not in stored:
            return None
        holder = stored["alias_holder"]
        return cls(holder) if holder is None or isinstance(holder, str) else None


def merge_alias_cursors(found: Iterable[AliasCursor]) -> AliasCursor:
    """The cursor of a watcher whose assets stored several: theirs when they agree; else none announced (the
    holder is announced again rather than missed by an asset that did not see it)."""
    holders = {cursor.holder for cursor in found}
    return AliasCursor(holders.pop()) if len(holders) == 1 else AliasCursor(None)


@dataclass(frozen=True)
class AliasResult:
    """What one alias watcher does with one resolved holder."""

    cursor: AliasCursor
    announce: PaiModelVersion | None = None


def apply_alias(
    cursor: AliasCursor | None, holder: PaiModelVersion | None, *, created_after: datetime | None = None
) -> AliasResult:
    """One alias watcher's announcement and next cursor, given the version holding the alias now (None: none).

    Announced: an Approved holder that is not the version announced last (so a move back to an earlier version
    announces it again; a move to a Pending version announces nothing until it is Approved). ``cursor`` None: the
    watcher starts without state: the holder as it stands is known and not announced, unless it was created after
    ``created_after``.
    """
    approved = holder if holder is not None and holder.status is ApprovalStatus.APPROVED else None
    if cursor is None:
        if approved is not None and created_after is not None:
            created = order_key(approved)[0]
            if created > created_after:
                return AliasResult(AliasCursor(approved.version_name), approved)
        return AliasResult(AliasCursor(None if approved is None else approved.version_name))
    if approved is None or approved.version_name == cursor.holder:
        return AliasResult(cursor)
    return AliasResult(AliasCursor(approved.version_name), approved)
