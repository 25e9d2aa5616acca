"""The decision core of the Fabric version wait: what to read next and what was decided, with no I/O (sans-IO).

The sensor in poke and reschedule mode drives it through the sync shell, the deferrable trigger through the async
shell and the triggerer's shared hub (:mod:`airflow_provider_modelreg.fabric_wait_io`). A shell asks
:meth:`FabricVersionCheck.next_read` what to read, performs that read and hands the answer back with
:meth:`FabricVersionCheck.receive` until :attr:`FabricVersionCheck.decision` is set. Reads are plain hashable
values, so one answer serves every wait on the same model.

Fabric versions have no approval status; a version is created asynchronously and is listed once done, and a version
whose listed ``status`` ends in ``FAILED`` failed. Two kinds of wait, fixed when the wait is created:

* **match** (``version_name``, exact; or ``version_pattern``, a regular expression the whole name must match): open
  with the newest matching version. If that newest matching version failed, the wait fails; a matching version that
  is not listed yet is waited for.
* **current** (``current_after``: a version id, or None): open once the model's current version (``current_version``
  of ListModels, moved by UpdateModelDefinition) is newer than the version ``current_after`` names (None: once the
  model has any current version).

"Newer" and "newest" order versions by ``(create_time, id)``, never by the server's order (the Fabric API documents
none). A version the decision depends on without a ``create_time`` raises
:class:`~airflow_provider_modelreg.errors.RegistryResponseError` naming ``create_time``: the wait never opens on an
answer it cannot justify.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_modelreg.approval_status import WaitDecision, WaitOutcome
from airflow_provider_modelreg.errors import RegistryInputError, RegistryResponseError
from airflow_provider_modelreg.validation import check_fabric_id, check_fabric_version_id, rendered_required

if TYPE_CHECKING:
    from airflow_provider_modelreg.models import FabricModel, FabricModelVersion

__all__ = [
    "READY_STATUSES",
    "FabricDecision",
    "FabricOutcome",
    "FabricRead",
    "FabricVersionCheck",
    "FabricVersionList",
    "FabricWaitTarget",
    "ReadFabricModel",
    "ReadFabricVersions",
    "checked_answer",
    "failed_status",
    "listed_status",
    "version_key",
    "version_state",
]

#: Longest ``version_pattern`` accepted (a pattern is compiled in every poll of every wait).
MAX_PATTERN_LENGTH = 256


class FabricOutcome(WaitOutcome):
    WAITING = "waiting"
    FOUND = "found"
    FAILED = "failed"


class FabricDecision(WaitDecision[FabricOutcome, "FabricModelVersion"]):
    """What one poll of the Fabric version wait decided: the version found (or that failed), if any."""


def _bad(field_name: str, problem: str, request_id: str | None = None) -> RegistryResponseError:
    return RegistryResponseError(field=field_name, problem=problem, request_id=request_id, status_code=200)


def checked_answer(
    read: FabricRead, pending: FabricRead | None, answer: Any, model_id: str
) -> FabricVersionList | FabricModel:
    """The answer to ``read``, checked: the read a core waits for (``pending``), answered by the type it reads (a
    listing, or the model ``model_id``).

    :param read: the read answered.
    :param pending: the read the core waits for.
    :param answer: what the I/O shell read.
    :param model_id: the model asked for.
    """
    if read != pending:
        raise RuntimeError(f"answer for {read!r} while waiting for {pending!r}")
    if isinstance(read, ReadFabricVersions):
        if not isinstance(answer, FabricVersionList):
            raise RuntimeError(f"{read!r} is answered by a FabricVersionList, not {type(answer).__name__}")
        return answer
    from airflow_provider_modelreg.models import FabricModel  # loaded: a registry answered

    if not isinstance(answer, FabricModel):
        raise RuntimeError(f"{read!r} is answered by a FabricModel, not {type(answer).__name__}")
    if answer.id != model_id:
        raise _bad("models[].id", f"asked for model {model_id}, the answer is about {answer.id}")
    return answer


def failed_status(version: FabricModelVersion) -> str | None:
    """The listed ``status`` of a version whose creation failed (``FAILED``, ``CREATE_FAILED`` ...), else None."""
    status = (version.model_extra or {}).get("status")
    return status if isinstance(status, str) and status.upper().endswith("FAILED") else None


#: listed statuses that say a version is usable (the SDK's ModelVersionInfo has no status at all: a version without
#: one is usable once listed, as the API says a new version shows when its creation is done)
READY_STATUSES = frozenset({"SUCCEEDED", "SUCCESS", "SUCCESSFUL", "READY", "AVAILABLE", "ACTIVE", "NORMAL", "CREATED"})


def version_state(version: FabricModelVersion) -> Literal["ready", "failed", "pending"]:
    """Whether a listed version is usable: ``failed`` (:func:`failed_status`), ``ready`` (no status, or one of
    :data:`READY_STATUSES`), else ``pending`` -- ``CREATING`` or any status not known to mean done: waited on, never
    taken for a version that can be deployed."""
    if failed_status(version) is not None:
        return "failed"
    status = (version.model_extra or {}).get("status")
    if status is None or (isinstance(status, str) and status.strip().upper() in READY_STATUSES | {""}):
        return "ready"
    return "pending"


def listed_status(version: FabricModelVersion) -> str:
    """The listed ``status`` as text, for messages (``-`` when there is none)."""
    status = (version.model_extra or {}).get("status")
    return "-" if status is None else str(status)[:64]


def version_key(version: FabricModelVersion, request_id: str | None = None) -> tuple[datetime, str]:
    """The one order of versions: ``create_time``, then ``id`` (raises naming ``create_time`` when it is missing)."""
    if version.create_time is None:
        raise _bad("create_time", f"version {version.id} ({version.name!r}) has no creation time", request_id)
    return version.create_time, version.id


def check_version_pattern(value: Any, field_name: str = "version_pattern") -> re.Pattern[str]:
    """A non-empty regular expression (matched against whole names), compiled; a typed error naming the field."""
    text = rendered_required(value, field_name)
    if len(text) > MAX_PATTERN_LENGTH:
        raise RegistryInputError(field_name, f"must be at most {MAX_PATTERN_LENGTH} characters", value)
    try:
        return re.compile(text)
    except re.error as exc:
        raise RegistryInputError(field_name, f"is not a valid regular expression ({exc})", value) from None


def check_wait_version_name(value: Any, field_name: str = "version_name") -> str:
    """An exact version name: non-empty, 1-64 characters, no control characters."""
    text = rendered_required(value, field_name)
    if len(text) > 64 or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise RegistryInputError(field_name, "must be 1-64 characters without control characters", value)
    return text


# ------------------------------------------------------------------------------------------------ target


@dataclass(frozen=True)
class FabricWaitTarget:
    """What one wait is for (validated on construction: bad input fails before any request).

    :param model_id: the model.
    :param workspace_id: the workspace (None: the connection's ``workspace_id``).
    :param version_name: match mode: the exact name.
    :param version_pattern: match mode: a regular expression the whole name must match.
    :param current_after: current mode: a version id the current version must be newer than (with ``current``).
    :param current: the mode is "current" (implied by ``current_after``; without it: any current version).
    """

    model_id: str
    workspace_id: str | None = None
    version_name: str | None = None
    version_pattern: str | None = None
    current_after: str | None = None
    current: bool = False

    def __post_init__(self) -> None:
        check_fabric_id(self.model_id, "model_id")
        if self.workspace_id is not None:
            check_fabric_id(self.workspace_id, "workspace_id")
        given = [n for n in ("version_name", "version_pattern") if getattr(self, n) is not None]
        if self.current_after is not None:
            object.__setattr__(self, "current", True)  # current_after implies the current-version wait
        if self.current:
            if given:
                raise RegistryInputError(given[0], "cannot be combined with current_after")
            if self.current_after is not None:
                check_fabric_version_id(self.current_after, "current_after")
            return
        if len(given) != 1:
            raise RegistryInputError("version_name", "give exactly one of version_name, version_pattern, current_after")
        if self.version_name is not None:
            check_wait_version_name(self.version_name)
        else:
            check_version_pattern(self.version_pattern)

    def matches(self, version: FabricModelVersion) -> bool:
        """Whether a version's name is what a match wait is for."""
        name = version.name
        if name is None:
            return False
        if self.version_name is not None:
            return name == self.version_name
        if self.version_pattern is not None:
            return re.fullmatch(self.version_pattern, name) is not None
        return False

    def describe(self) -> str:
        if self.version_name is not None:
            return f"a version named {self.version_name!r}"
        if self.version_pattern is not None:
            return f"a version whose name matches {self.version_pattern!r}"
        if self.current_after is not None:
            return f"the current version to move past {self.current_after}"
        return "a current version"


# ------------------------------------------------------------------------------------------------ reads


@dataclass(frozen=True)
class _ModelRead:
    """A read about one model (``workspace_id`` None: the connection's workspace); each kind is its own class,
    so two kinds of read of one model are never equal."""

    workspace_id: str | None
    model_id: str


class ReadFabricVersions(_ModelRead):
    """ListModelVersions, every page, unfiltered. Answer: :class:`FabricVersionList` (in any order)."""


class ReadFabricModel(_ModelRead):
    """The model (ListModels filtered by id). Answer: :class:`~airflow_provider_modelreg.models.FabricModel`."""


FabricRead = ReadFabricVersions | ReadFabricModel


@dataclass(frozen=True)
class FabricVersionList:
    """Every listed version of a model, as the core needs it (the order is the core's own)."""

    versions: tuple[FabricModelVersion, ...]
    request_id: str | None = None

    def newest_first(self, among: Iterable[FabricModelVersion]) -> list[FabricModelVersion]:
        """``among`` sorted newest first by ``(create_time, id)`` (each must have a creation time)."""
        return sorted(among, key=lambda v: version_key(v, self.request_id), reverse=True)


def describe_answer(read: FabricRead, answer: Any) -> str:
    """One line on what a shared read saw, for the hub's INFO log."""
    if isinstance(answer, FabricVersionList):
        dated = [v for v in answer.versions if v.create_time is not None]
        newest = max(dated, key=version_key, default=None)
        shown = f"{newest.name} ({newest.id})" if newest is not None else "none"
        return f"{len(answer.versions)} versions; newest {shown}"
    from airflow_provider_modelreg.models import FabricModel  # loaded: a registry answered

    if isinstance(answer, FabricModel):
        current = answer.current_version
        return f"current version {current.name} ({current.id})" if current is not None else "no current version"
    return repr(answer)


# ------------------------------------------------------------------------------------------------ one poll


@dataclass
class FabricVersionCheck:
    """One poll of one wait. Create it with what is already known (the anchor's key, once resolved), then drive it.

    :param target: the wait.
    :param anchor: ``(create_time, id)`` of ``current_after``, from an earlier poll of the same wait.
    """

    target: FabricWaitTarget
    anchor: tuple[datetime, str] | None = None
    decision: FabricDecision | None = None
    _pending: FabricRead | None = None
    _model: FabricModel | None = None

    def __post_init__(self) -> None:
        t = self.target
        if t.current:
            need_versions = t.current_after is not None and self.anchor is None
            kind = ReadFabricVersions if need_versions else ReadFabricModel
            self._pending = kind(t.workspace_id, t.model_id)
        else:
            self._pending = ReadFabricVersions(t.workspace_id, t.model_id)

    def next_read(self) -> FabricRead | None:
        """The read to perform next, or None once :attr:`decision` is set."""
        return self._pending

    def receive(self, read: FabricRead, answer: Any) -> None:
        """Feed the answer to :meth:`next_read`'s read."""
        checked = checked_answer(read, self._pending, answer, self.target.model_id)
        self._pending = None
        if not isinstance(checked, FabricVersionList):
            self._on_model(checked)
        elif self.target.current:
            self._on_anchor(checked)
        else:
            self._on_versions(checked)

    def _decide(self, outcome: FabricOutcome, version: FabricModelVersion | None, outlook: str) -> None:
        self.decision = FabricDecision(outcome, version, outlook)

    def _settle(self, version: FabricModelVersion, *, failed: str, pending: str, found: str) -> None:
        """FAILED, WAITING (still being created) or FOUND on ``version``; each outlook says ``failed``, ``pending``
        or ``found`` (the first two followed by the status)."""
        status = failed_status(version)
        if status is not None:
            self._decide(FabricOutcome.FAILED, version, f"{failed} failed: {status}")
        elif version_state(version) == "pending":
            self._decide(FabricOutcome.WAITING, None, f"{pending} {listed_status(version)}: not ready yet")
        else:
            self._decide(FabricOutcome.FOUND, version, found)

    def _on_versions(self, answer: FabricVersionList) -> None:
        matching = [v for v in answer.versions if self.target.matches(v)]
        if not matching:
            self._decide(FabricOutcome.WAITING, None, "no matching version is listed yet")
            return
        newest = answer.newest_first(matching)[0]
        name = f"{newest.name} ({newest.id})"
        self._settle(newest, failed=name, pending=f"{name} is listed with status", found=f"{name} is listed")

    def _on_anchor(self, answer: FabricVersionList) -> None:
        wanted = self.target.current_after
        found = [v for v in answer.versions if v.id == wanted]
        if not found:
            raise RegistryInputError(
                "current_after", f"names no listed version of model {self.target.model_id}", wanted
            )
        if len(found) > 1:
            raise _bad("versions[].id", f"{len(found)} versions with id {wanted}", answer.request_id)
        self.anchor = version_key(found[0], answer.request_id)
        self._pending = ReadFabricModel(self.target.workspace_id, self.target.model_id)

    def _on_model(self, model: FabricModel) -> None:
        current = model.current_version
        if current is None:
            self._decide(FabricOutcome.WAITING, None, "the model has no current version")
            return
        key = version_key(current)
        if self.anchor is not None and key <= self.anchor:
            self._decide(FabricOutcome.WAITING, None, f"the current version is still {current.name} ({current.id})")
            return
        self._settle(
            current,
            failed=f"current version {current.id}",
            pending=f"the current version {current.id} has status",
            found=f"the current version is {current.name} ({current.id})",
        )
