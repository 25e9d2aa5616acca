"""The Fabric asset watcher's core, with no I/O: what one poll reads, what it saw, and what each watcher announces.

Two modes:

* ``new_version``: each new version is announced once. Fabric lists a version once its asynchronous creation is
  done, and the API documents no order, so a poll reads every version
  (:class:`~airflow_provider_modelreg.fabric_wait.ReadFabricVersions`) and a watcher's state is the set of version
  ids listed at its last poll: a version listed now and not then is new, whatever its ``create_time`` (a version
  created before another can be listed after it). New versions are announced oldest first by ``(create_time, id)``;
  a new version without ``create_time`` cannot be ordered and fails the poll, naming ``create_time`` (nothing is
  announced from it, the state does not move: the next poll tries again). A failed version is not announced.
  The state holds the ids listed now, so it does not grow with deleted versions.
* ``current_version``: each new current version is announced once. A poll reads the model
  (:class:`~airflow_provider_modelreg.fabric_wait.ReadFabricModel`); the state is the current version's id at the
  last poll; a different current version (moved by UpdateModelDefinition) is announced. A current version that is
  set and moved away from between two polls is not seen.

On its first start with no state a watcher takes the model as it stands (nothing announced), except, with
``created_after``, the versions (or the current version) created after that time, which are announced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_modelreg.fabric_wait import (
    FabricRead,
    FabricVersionList,
    ReadFabricModel,
    ReadFabricVersions,
    checked_answer,
    failed_status,
    version_key,
    version_state,
)
from airflow_provider_modelreg.models import FabricModel, FabricModelVersion
from airflow_provider_modelreg.validation import check_choice
from airflow_provider_modelreg.watch import StateIdentity

__all__ = [
    "WATCH_MODES",
    "FabricObservation",
    "FabricWatchCursor",
    "FabricWatchIdentity",
    "FabricWatchPoll",
    "FabricWatchResult",
    "apply_fabric_observation",
    "check_watch_mode",
]

#: The watcher's modes (see the module docstring).
WATCH_MODES = ("new_version", "current_version")
#: State format written by this version.
STATE_VERSION = 1


def check_watch_mode(value: Any) -> str:
    """``mode`` must be one of :data:`WATCH_MODES` (typed error naming the field)."""
    return check_choice(value, "mode", WATCH_MODES)


@dataclass(frozen=True)
class FabricWatchIdentity(StateIdentity):
    """What a watcher's state describes: one model (and workspace) seen through one connection and endpoint, in
    one mode. Its :attr:`state_key` namespaces the state in an asset's store; a stored state of another identity
    is never read as ours."""

    conn_id: str
    endpoint: str
    workspace_id: str | None
    model_id: str
    mode: str

    def to_json(self) -> dict[str, Any]:
        return {
            "conn_id": self.conn_id,
            "endpoint": self.endpoint,
            "workspace_id": self.workspace_id,
            "model_id": self.model_id,
            "mode": self.mode,
        }

    @property
    def state_key(self) -> str:
        return f"modelreg_fabric_watch:{self.model_id}:{self.digest()}"


@dataclass(frozen=True)
class FabricWatchCursor:
    """One watcher's state.

    :param known: ``new_version``: ids of the versions listed at the last poll (announced, failed or known; one
        still being created is left out, so that the poll that sees it ready announces it).
    :param current: ``current_version``: id of the current version at the last poll (None: none).
    """

    known: frozenset[str] = frozenset()
    current: str | None = None

    def to_json(self, identity: FabricWatchIdentity) -> dict[str, Any]:
        return identity.state(STATE_VERSION, {"known": sorted(self.known), "current": self.current})

    @classmethod
    def from_json(cls, value: Any, identity: FabricWatchIdentity) -> FabricWatchCursor | None:
        """The stored cursor of ``identity``; None when nothing usable is stored or it is another watcher's."""
        stored = identity.stored_fields(value, STATE_VERSION)
        if stored is None:
            return None
        known, current = stored.get("known"), stored.get("current")
        if not isinstance(known, list) or not all(isinstance(i, str) for i in known):
            return None
        if current is not None and not isinstance(current, str):
            return None
        return cls(frozenset(known), current)


def merge_fabric_cursors(found: list[FabricWatchCursor]) -> FabricWatchCursor:
    """One watcher serving several assets: the state furthest behind (fewest versions known; the current version
    of the first) decides, so nothing one of them missed is skipped (they are written together)."""
    known = frozenset.intersection(*(c.known for c in found))
    return FabricWatchCursor(known, found[0].current)


@dataclass(frozen=True)
class FabricObservation:
    """What one poll saw: every listed version (``new_version``) or the model (``current_version``)."""

    model_id: str
    versions: FabricVersionList | None = None
    model: FabricModel | None = None
    #: where the model is (filled in by the shell after the poll): for each announced version's ModelVersionRef
    workspace_id: str | None = None
    region: str | None = None

    def ref(self, version: FabricModelVersion) -> dict[str, Any]:
        """The ModelVersionRef dict of a version of this model."""
        workspace = self.workspace_id or ""
        return version.to_ref(workspace_id=workspace, model_id=self.model_id, region=self.region).to_xcom()


@dataclass
class FabricWatchPoll:
    """One poll for every watcher of a model in one mode (sans-IO: drive it with ``approval_io.adrive``)."""

    workspace_id: str | None
    model_id: str
    mode: str
    observation: FabricObservation | None = None
    _pending: FabricRead | None = None

    def __post_init__(self) -> None:
        kind = ReadFabricVersions if self.mode == "new_version" else ReadFabricModel
        self._pending = kind(self.workspace_id, self.model_id)

    def next_read(self) -> FabricRead | None:
        return self._pending

    def receive(self, read: FabricRead, answer: Any) -> None:
        checked = checked_answer(read, self._pending, answer, self.model_id)
        self._pending = None
        if isinstance(checked, FabricModel):
            self.observation = FabricObservation(self.model_id, model=checked)
        else:
            self.observation = FabricObservation(self.model_id, versions=checked)


@dataclass(frozen=True)
class FabricWatchResult:
    """What one watcher does with one observation."""

    cursor: FabricWatchCursor
    announce: tuple[FabricModelVersion, ...] = ()
    failed: tuple[FabricModelVersion, ...] = ()  # new versions that failed: reported, not announced


def apply_fabric_observation(
    cursor: FabricWatchCursor | None,
    obs: FabricObservation,
    *,
    mode: str,
    created_after: datetime | None = None,
) -> FabricWatchResult:
    """One watcher's announcements and next cursor. ``cursor`` None: the watcher starts without state (only the
    versions created after ``created_after`` are announced; None: nothing)."""
    if mode == "new_version":
        if obs.versions is None:
            raise RuntimeError("a new_version watcher needs the listing")
        return _new_versions(cursor, obs.versions, created_after)
    if obs.model is None:
        raise RuntimeError("a current_version watcher needs the model")
    return _current_version(cursor, obs.model, created_after)


def _new_versions(
    cursor: FabricWatchCursor | None, listing: FabricVersionList, created_after: datetime | None
) -> FabricWatchResult:
    # a version listed while still being created is not known yet: the poll that sees it ready announces it
    listed = frozenset(v.id for v in listing.versions if version_state(v) != "pending")
    if cursor is None:
        if created_after is None:
            return FabricWatchResult(FabricWatchCursor(listed))
        new = [v for v in listing.versions if v.create_time is not None and v.create_time > created_after]
    else:
        new = [v for v in listing.versions if v.id not in cursor.known]
    ordered = listing.newest_first(new)[::-1]  # oldest first; raises naming create_time on an undated one
    failed = tuple(v for v in ordered if version_state(v) == "failed")
    announce = tuple(v for v in ordered if version_state(v) == "ready")
    return FabricWatchResult(FabricWatchCursor(listed), announce, failed)


def _current_version(
    cursor: FabricWatchCursor | None, model: FabricModel, created_after: datetime | None
) -> FabricWatchResult:
    current = model.current_version
    now = FabricWatchCursor(current=None if current is None else current.id)
    if current is None:
        return FabricWatchResult(now if cursor is None else FabricWatchCursor(cursor.known, None))
    if cursor is None:
        if created_after is None or version_key(current)[0] <= created_after:
            return FabricWatchResult(now)
    elif cursor.current == current.id:
        return FabricWatchResult(cursor)
    if failed_status(current) is not None:
        return FabricWatchResult(now, failed=(current,))
    if version_state(current) == "pending":  # not ready yet: the move is announced by the poll that sees it ready
        return FabricWatchResult(cursor if cursor is not None else FabricWatchCursor(current=None))
    return FabricWatchResult(now, announce=(current,))
