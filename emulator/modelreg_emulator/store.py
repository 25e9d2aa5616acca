"""In-memory registry state, loaded from a JSON seed.

Seed shape (the keys are the portable contract)::

    {"pai": {"credentials": [{"access_key_id": "...", "access_key_secret": "..."}],
             "models": [{"ModelId": "...", "ModelName": "...", "WorkspaceId": "...",
                         "Versions": [{<PAI version fields as on the wire>,
                                       "_then": {"after_seconds": 5, "ApprovalStatus": "Approved"}}],
                         "generate_versions": 0}]},
     "fabric": {"credentials": [{"ak": "...", "sk": "...", "project_id": "..."}],
                "users": [{"name": "...", "password": "...", "domain": "...", "project_id": "..."}],
                "workspaces": [{"id": "...", "models": [{"id": "...", "name": "...",
                                "versions": [<Fabric version fields as on the wire>],
                                "generate_versions": 0}]}]}}

* ``_then`` schedules one approval-status change, ``after_seconds`` after the store was created (emulator start).
  It is skipped when the version is no longer ``Pending`` by then (Approved and Rejected are terminal).
* ``generate_versions: N`` appends N synthetic versions with distinct names/ids and strictly increasing creation
  times, all later than the model's seeded versions. PAI: ``gen-000001`` ... (every tenth ``Approved``, the rest
  ``Pending``); Fabric: ``gen-000001`` ... with deterministic UUID ids.
* A seed version without a creation time (PAI ``GmtCreateTime``, Fabric ``create_time``) gets one in the past, in
  seed order: with N such versions in a model, the first gets the emulator's start time minus N seconds, the next
  minus N-1 seconds, ..., the last minus 1 second. So they are distinct, ordered as seeded, and "created after"
  one of them means what it says. A version added while the emulator runs (CreateModelVersion, ``add_*_version``)
  without one gets the current time. Times are kept to the millisecond, as the wire shows them.
* Server orders: by creation time, ascending or (PAI ``Order=DESC``) the exact reverse. Ties (equal times to the
  millisecond) are broken by seed order, then by the order versions were added while running (a store-wide
  sequence number): deterministic. PAI documents this sort (``SortBy=GmtCreateTime``). **Fabric's order is a
  guess**: the Fabric docs state no order for ListModelVersions; the emulator serves ``create_time`` ascending, and
  the provider's hook does not rely on it (it reads every page, merges by id and sorts by ``create_time``, ``id``).

Every seed problem raises :class:`SeedError` naming the JSON path of the bad value (``$.pai.models[0].ModelId``).
Unknown keys are refused the same way at every level of the shape above (``$.pai.models[0].Version: unknown key``),
so that a typo cannot start an emulator with silently missing data. Models take their vendor's wire fields besides
the keys shown; inside versions the wire fields are free-form (only ``_then`` is checked).
"""

from __future__ import annotations

import bisect
import difflib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from airflow_provider_modelreg.models import FabricModel, FabricModelVersion, PaiModel, PaiModelVersion

__all__ = [
    "APPROVAL_STATUSES",
    "FabricModelState",
    "FabricVersionState",
    "PaiModelState",
    "PaiVersionState",
    "SeedError",
    "Store",
    "TemporaryKeyState",
    "load_seed",
]

APPROVAL_STATUSES = ("Pending", "Approved", "Rejected")
_GEN_BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
_UUID_NS = uuid.UUID("6f1c3f4e-8a53-4a4e-9a55-6d6f64656c72")


class SeedError(ValueError):
    """A seed value is invalid; :attr:`path` is the JSON path of the bad value."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"seed error at {path}: {problem}")
        self.path = path
        self.problem = problem


def iso_ms(moment: datetime) -> str:
    """``2024-01-01T08:00:00.000Z`` (the PAI wire format)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_s(moment: datetime) -> str:
    """``2024-01-01T08:00:00Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """Parse an ISO 8601 timestamp (``Z`` or offset; naive means UTC); None when unparseable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def to_ms(moment: datetime) -> datetime:
    """``moment`` truncated to the millisecond (the precision of the wire format, so that sorting sees ties)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def normalise_status(value: Any) -> str | None:
    """Pascal-case approval status, case-insensitively; None when unknown."""
    if not isinstance(value, str):
        return None
    for status in APPROVAL_STATUSES:
        if status.lower() == value.strip().lower():
            return status
    return None


# ------------------------------------------------------------------------------------------------- state


@dataclass
class VersionState:
    """One version of either vendor: its wire dict, a sort key and a cached JSON encoding."""

    data: dict[str, Any]
    created: float
    seq: int
    _json: str | None = None

    @property
    def key(self) -> tuple[float, int]:
        return (self.created, self.seq)

    def json(self) -> str:
        if self._json is None:
            self._json = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        return self._json

    def touch(self) -> None:
        """Forget the cached encoding after ``data`` changed."""
        self._json = None


@dataclass
class PaiVersionState(VersionState):
    """One PAI version."""

    @property
    def name(self) -> str:
        return str(self.data["VersionName"])


@dataclass
class PaiModelState:
    """A PAI model: its wire fields (no versions) and its versions sorted by creation time."""

    meta: dict[str, Any]
    versions: list[PaiVersionState] = field(default_factory=list)
    by_name: dict[str, PaiVersionState] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return str(self.meta["ModelId"])

    def add(self, version: PaiVersionState) -> None:
        bisect.insort(self.versions, version, key=lambda v: v.key)
        self.by_name[version.name] = version

    def latest(self) -> PaiVersionState | None:
        return self.versions[-1] if self.versions else None


class FabricVersionState(VersionState):
    """One Fabric version."""


@dataclass
class FabricModelState:
    """A Fabric model: its wire fields (no versions) and its versions in the order served.

    ``create_time`` ascending is the emulator's guess: the Fabric API documents no order for ListModelVersions.
    """

    meta: dict[str, Any]
    workspace_id: str
    versions: list[FabricVersionState] = field(default_factory=list)

    def add(self, version: FabricVersionState) -> None:
        bisect.insort(self.versions, version, key=lambda v: v.key)

    def latest(self) -> FabricVersionState | None:
        """The newest version that did not fail."""
        good = self.good()
        return good[-1] if good else None

    def good(self) -> list[FabricVersionState]:
        """The versions that did not fail, oldest first."""
        return [v for v in self.versions if v.data.get("status") != "FAILED"]

    def find(self, version_id: str) -> FabricVersionState | None:
        return next((v for v in self.versions if v.data.get("id") == version_id), None)


@dataclass(frozen=True)
class _Scheduled:
    after: float
    model_id: str
    version_name: str
    status: str


@dataclass
class IamTokenState:
    user: str
    domain: str
    project_id: str
    project_name: str
    expires_at: float


# ------------------------------------------------------------------------------------------------- seed checks


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SeedError(path, f"must be a JSON object, not {type(value).__name__}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise SeedError(path, f"must be a JSON array, not {type(value).__name__}")
    return value


def _wire_names(model: type[Any]) -> frozenset[str]:
    """The wire names of a pydantic model's fields (aliases where set)."""
    return frozenset(f.alias or name for name, f in model.model_fields.items())


_PAI_MODEL_KEYS = _wire_names(PaiModel) | {"Versions", "generate_versions"}
_FABRIC_MODEL_KEYS = _wire_names(FabricModel) | {"versions", "generate_versions"}


def _known_keys(obj: Mapping[str, Any], path: str, allowed: frozenset[str] | set[str] | tuple[str, ...]) -> None:
    """Refuse the first key of ``obj`` that is not in ``allowed`` (with a close match as a hint)."""
    for key in obj:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            shown = ", ".join(sorted(allowed)) if len(allowed) <= 8 else "the documented seed keys"
            raise SeedError(f"{path}.{key}", f"unknown key (expected {shown}){hint}")


def _str(obj: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> str | None:
    if key not in obj or obj[key] is None:
        if required:
            raise SeedError(f"{path}.{key}", "is required")
        return None
    value = obj[key]
    if not isinstance(value, str) or not value:
        raise SeedError(f"{path}.{key}", "must be a non-empty string")
    return value


def _count(obj: Mapping[str, Any], key: str, path: str) -> int:
    value = obj.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 1_000_000:
        raise SeedError(f"{path}.{key}", "must be an integer between 0 and 1000000")
    return value


def _pydantic_path(base: str, exc: ValidationError) -> SeedError:
    first = exc.errors(include_url=False)[0]
    out = base
    for part in first["loc"]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return SeedError(out, str(first["msg"]))


def load_seed(seed: Mapping[str, Any] | str | Path | None) -> dict[str, Any]:
    """The seed as a dict: a mapping as is, a path read as JSON, JSON text parsed, None the built-in demo seed."""
    if seed is None:
        text = (Path(__file__).with_name("demo_seed.json")).read_text(encoding="utf-8")
        source = "built-in demo seed"
    elif isinstance(seed, Mapping):
        return dict(seed)
    elif isinstance(seed, str) and seed.lstrip().startswith("{"):
        text, source = seed, "seed text"
    else:
        try:
            text = Path(seed).read_text(encoding="utf-8")
        except OSError as exc:
            raise SeedError("$", f"cannot read seed file {seed}: {exc.strerror or exc}") from None
        source = str(seed)
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeedError("$", f"{source} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    return _obj(loaded, "$")


# ------------------------------------------------------------------------------------------------- store


@dataclass
class TemporaryKeyState:
    """A temporary key issued by one of the emulator's credential services."""

    vendor: str
    key_id: str
    secret: str
    token: str
    issued_at: float
    expires_at: float
    #: which service issued it (e.g. ``sts.AssumeRole``, ``ecs.metadata``)
    issuer: str


class Store:
    """All registry state of one emulator; thread-safe (tests mutate it while the server runs).

    :param seed: the seed (mapping, path, JSON text, or None for the built-in demo seed).
    :param token_lifetime: IAM token lifetime in seconds.
    """

    def __init__(
        self,
        seed: Mapping[str, Any] | str | Path | None = None,
        *,
        token_lifetime: float = 86400,
        version_delay: float = 0.5,
    ) -> None:
        if version_delay < 0:
            raise ValueError("version_delay must be >= 0")
        self.lock = threading.RLock()
        #: seconds a Fabric version takes to be created (CreateModelDefinition, UpdateModelDefinition) and listed
        self.version_delay = float(version_delay)
        #: this many next Fabric versions fail (listed with ``status`` FAILED once their delay has passed)
        self.fabric_fail_next = 0
        self._fabric_pending: list[tuple[float, FabricModelState, FabricVersionState]] = []
        self.started_monotonic = time.monotonic()
        self.started_wall = datetime.now(timezone.utc)
        self.token_lifetime = float(token_lifetime)
        self.pai_credentials: dict[str, str] = {}
        self.pai_models: dict[str, PaiModelState] = {}
        self.fabric_credentials: dict[str, tuple[str, str | None]] = {}
        self.fabric_users: list[dict[str, str | None]] = []
        self.workspaces: dict[str, dict[str, FabricModelState]] = {}
        self.tokens: dict[str, IamTokenState] = {}
        #: temporary keys issued by the credential services (STS, metadata, IAM securitytokens): id -> state
        self.temporary_keys: dict[str, TemporaryKeyState] = {}
        self._schedule: list[_Scheduled] = []
        self._seq = 0
        self._load(load_seed(seed))

    # -------------------------------------------------------------------------------------------- loading

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _load(self, seed: dict[str, Any]) -> None:
        _known_keys(seed, "$", ("pai", "fabric"))
        pai = _obj(seed.get("pai") or {}, "$.pai")
        _known_keys(pai, "$.pai", ("credentials", "models"))
        for i, cred in enumerate(_list(pai.get("credentials") or [], "$.pai.credentials")):
            path = f"$.pai.credentials[{i}]"
            cred = _obj(cred, path)
            _known_keys(cred, path, ("access_key_id", "access_key_secret"))
            key_id = _str(cred, "access_key_id", path)
            secret = _str(cred, "access_key_secret", path)
            assert key_id is not None and secret is not None
            self.pai_credentials[key_id] = secret
        for i, model in enumerate(_list(pai.get("models") or [], "$.pai.models")):
            self._load_pai_model(_obj(model, f"$.pai.models[{i}]"), f"$.pai.models[{i}]")

        fabric = _obj(seed.get("fabric") or {}, "$.fabric")
        _known_keys(fabric, "$.fabric", ("credentials", "users", "workspaces"))
        for i, cred in enumerate(_list(fabric.get("credentials") or [], "$.fabric.credentials")):
            path = f"$.fabric.credentials[{i}]"
            cred = _obj(cred, path)
            _known_keys(cred, path, ("ak", "sk", "project_id"))
            ak = _str(cred, "ak", path)
            sk = _str(cred, "sk", path)
            assert ak is not None and sk is not None
            self.fabric_credentials[ak] = (sk, _str(cred, "project_id", path, required=False))
        for i, user in enumerate(_list(fabric.get("users") or [], "$.fabric.users")):
            path = f"$.fabric.users[{i}]"
            user = _obj(user, path)
            _known_keys(user, path, ("name", "password", "domain", "project_id", "project_name"))
            self.fabric_users.append(
                {
                    "name": _str(user, "name", path),
                    "password": _str(user, "password", path),
                    "domain": _str(user, "domain", path),
                    "project_id": _str(user, "project_id", path, required=False),
                    "project_name": _str(user, "project_name", path, required=False),
                }
            )
        for i, ws in enumerate(_list(fabric.get("workspaces") or [], "$.fabric.workspaces")):
            path = f"$.fabric.workspaces[{i}]"
            ws = _obj(ws, path)
            _known_keys(ws, path, ("id", "models"))
            ws_id = _str(ws, "id", path)
            assert ws_id is not None
            if ws_id in self.workspaces:
                raise SeedError(f"{path}.id", f"duplicate workspace id {ws_id!r}")
            models: dict[str, FabricModelState] = {}
            self.workspaces[ws_id] = models
            for j, model in enumerate(_list(ws.get("models") or [], f"{path}.models")):
                self._load_fabric_model(ws_id, models, _obj(model, f"{path}.models[{j}]"), f"{path}.models[{j}]")
        self._schedule.sort(key=lambda s: s.after)
        # encode every version once now, so that serving a page only joins cached strings
        for pai_model in self.pai_models.values():
            for pai_version in pai_model.versions:
                pai_version.json()
        for models in self.workspaces.values():
            for fabric_model in models.values():
                for fabric_version in fabric_model.versions:
                    fabric_version.json()

    def _load_pai_model(self, model: dict[str, Any], path: str) -> None:
        _known_keys(model, path, _PAI_MODEL_KEYS)
        model_id = _str(model, "ModelId", path)
        assert model_id is not None
        if model_id in self.pai_models:
            raise SeedError(f"{path}.ModelId", f"duplicate ModelId {model_id!r}")
        meta = {k: v for k, v in model.items() if k not in ("Versions", "generate_versions")}
        try:
            PaiModel.model_validate(meta)
        except ValidationError as exc:
            raise _pydantic_path(path, exc) from None
        state = PaiModelState(meta=meta)
        seeded = _list(model.get("Versions") or [], f"{path}.Versions")
        undated = self._undated(seeded, "GmtCreateTime")
        for j, version in enumerate(seeded):
            vpath = f"{path}.Versions[{j}]"
            version = dict(_obj(version, vpath))
            then = version.pop("_then", None)
            vs = self._make_pai_version(state, version, vpath, default_created=undated.get(j))
            if then is not None:
                then = _obj(then, f"{vpath}._then")
                _known_keys(then, f"{vpath}._then", ("after_seconds", "ApprovalStatus"))
                after = then.get("after_seconds")
                if isinstance(after, bool) or not isinstance(after, (int, float)) or after < 0:
                    raise SeedError(f"{vpath}._then.after_seconds", "must be a number >= 0")
                status = normalise_status(then.get("ApprovalStatus"))
                if status is None:
                    raise SeedError(f"{vpath}._then.ApprovalStatus", "must be one of Pending, Approved, Rejected")
                self._schedule.append(_Scheduled(float(after), model_id, vs.name, status))
            state.add(vs)
        count = _count(model, "generate_versions", path)
        if count:
            last = state.latest()
            base = max(_GEN_BASE.timestamp(), last.created if last else 0.0) + 60.0
            for n in range(1, count + 1):
                name = f"gen-{n:06d}"
                while name in state.by_name:
                    name += "x"
                created = datetime.fromtimestamp(base + 60.0 * n, timezone.utc)
                data = {
                    "VersionName": name,
                    "ApprovalStatus": "Approved" if n % 10 == 0 else "Pending",
                    "Uri": f"oss://emulator-models.oss-cn-hangzhou.aliyuncs.com/{model_id}/{name}/",
                    "FormatType": "SavedModel",
                    "FrameworkType": "TensorFlow",
                    "SourceType": "Custom",
                    "Labels": [{"Key": "generated", "Value": "true"}],
                    "InferenceSpec": {"processor": "tensorflow_cpu_2.3"},
                    "VersionDescription": f"synthetic version {n}",
                    "OwnerId": "1000000000000000",
                    "UserId": "1000000000000000",
                    "GmtCreateTime": iso_ms(created),
                    "GmtModifiedTime": iso_ms(created),
                }
                state.add(PaiVersionState(data=data, created=created.timestamp(), seq=self._next_seq()))
        self.pai_models[model_id] = state

    def _undated(self, versions: list[Any], time_field: str) -> dict[int, datetime]:
        """Creation times for the seed versions lacking ``time_field``: start - N s, ..., start - 1 s, in seed order."""
        missing = [j for j, v in enumerate(versions) if isinstance(v, dict) and time_field not in v]
        start = to_ms(self.started_wall)
        return {j: start - timedelta(seconds=len(missing) - k) for k, j in enumerate(missing)}

    def _make_pai_version(
        self,
        state: PaiModelState,
        version: dict[str, Any],
        path: str,
        *,
        default_created: datetime | None = None,
    ) -> PaiVersionState:
        name = _str(version, "VersionName", path)
        assert name is not None
        if name in state.by_name:
            raise SeedError(f"{path}.VersionName", f"duplicate VersionName {name!r}")
        if "ApprovalStatus" in version:
            status = normalise_status(version["ApprovalStatus"])
            if status is None:
                raise SeedError(f"{path}.ApprovalStatus", "must be one of Pending, Approved, Rejected")
            version["ApprovalStatus"] = status
        else:
            version["ApprovalStatus"] = "Pending"
        try:
            PaiModelVersion.model_validate(version)
        except ValidationError as exc:
            raise _pydantic_path(path, exc) from None
        if "GmtCreateTime" in version:
            created = parse_time(version["GmtCreateTime"])
            if created is None:
                raise SeedError(f"{path}.GmtCreateTime", "must be an ISO 8601 timestamp")
        else:
            created = default_created or to_ms(datetime.now(timezone.utc))
            version["GmtCreateTime"] = iso_ms(created)
        version.setdefault("GmtModifiedTime", version["GmtCreateTime"])
        return PaiVersionState(data=version, created=created.timestamp(), seq=self._next_seq())

    def _load_fabric_model(
        self, ws_id: str, models: dict[str, FabricModelState], model: dict[str, Any], path: str
    ) -> None:
        _known_keys(model, path, _FABRIC_MODEL_KEYS)
        model_id = _str(model, "id", path)
        assert model_id is not None
        if model_id in models:
            raise SeedError(f"{path}.id", f"duplicate model id {model_id!r}")
        meta = {k: v for k, v in model.items() if k not in ("versions", "generate_versions")}
        meta.setdefault("type", "LLM_MODEL")
        meta.setdefault("visibility", "PRIVATE")
        try:
            FabricModel.model_validate(meta)
        except ValidationError as exc:
            raise _pydantic_path(path, exc) from None
        state = FabricModelState(meta=meta, workspace_id=ws_id)
        seen: set[str] = set()
        seeded = _list(model.get("versions") or [], f"{path}.versions")
        undated = self._undated(seeded, "create_time")
        for j, version in enumerate(seeded):
            vpath = f"{path}.versions[{j}]"
            vs = self._make_fabric_version(dict(_obj(version, vpath)), vpath, default_created=undated.get(j))
            if vs.data["id"] in seen:
                raise SeedError(f"{vpath}.id", f"duplicate version id {vs.data['id']!r}")
            seen.add(vs.data["id"])
            state.add(vs)
        count = _count(model, "generate_versions", path)
        if count:
            last = state.latest()
            base = max(_GEN_BASE.timestamp(), last.created if last else 0.0) + 60.0
            for n in range(1, count + 1):
                created = datetime.fromtimestamp(base + 60.0 * n, timezone.utc)
                data = {
                    "id": str(uuid.uuid5(_UUID_NS, f"{ws_id}/{model_id}/{n}")),
                    "name": f"gen-{n:06d}",
                    "description": f"synthetic version {n}",
                    "cap_white_list": [],
                    "config": {
                        "llm_model_config": {
                            "base_model_type": "QWEN_2_72B",
                            "model_path": f"obs://emulator-models/{model_id}/gen-{n:06d}/",
                        }
                    },
                    "create_time": iso_ms(created),
                    "create_user": {
                        "domain_name": "emulator",
                        "domain_id": "d-emulator",
                        "user_name": "emulator",
                        "user_id": "u-emulator",
                    },
                }
                state.add(FabricVersionState(data=data, created=created.timestamp(), seq=self._next_seq()))
        models[model_id] = state

    def _make_fabric_version(
        self, version: dict[str, Any], path: str, *, default_created: datetime | None = None
    ) -> FabricVersionState:
        _str(version, "id", path)
        try:
            FabricModelVersion.model_validate(version)
        except ValidationError as exc:
            raise _pydantic_path(path, exc) from None
        if "create_time" in version:
            created = parse_time(version["create_time"])
            if created is None:
                raise SeedError(f"{path}.create_time", "must be an ISO 8601 timestamp")
        else:
            created = default_created or to_ms(datetime.now(timezone.utc))
            version["create_time"] = iso_ms(created)
        return FabricVersionState(data=version, created=created.timestamp(), seq=self._next_seq())

    # -------------------------------------------------------------------------------------------- schedule

    def mark_started(self) -> None:
        """Restart the clock that ``_then`` delays count from (the emulator calls it when it starts serving)."""
        with self.lock:
            self.started_monotonic = time.monotonic()
            self.started_wall = datetime.now(timezone.utc)

    def tick(self) -> None:
        """Apply every scheduled ``_then`` change that is due and list the Fabric versions whose creation is done
        (called before each request is served)."""
        if self._fabric_pending:
            self._list_done_versions()
        if not self._schedule or self._schedule[0].after > time.monotonic() - self.started_monotonic:
            return
        with self.lock:
            elapsed = time.monotonic() - self.started_monotonic
            while self._schedule and self._schedule[0].after <= elapsed:
                item = self._schedule.pop(0)
                model = self.pai_models.get(item.model_id)
                version = model.by_name.get(item.version_name) if model else None
                if version is None or version.data.get("ApprovalStatus") != "Pending":
                    continue  # terminal already (or gone): the scheduled change does not apply
                moment = self.started_wall + timedelta(seconds=item.after)
                version.data["ApprovalStatus"] = item.status
                version.data["GmtModifiedTime"] = iso_ms(moment)
                version.touch()

    # -------------------------------------------------------------------------------------------- test API

    def pai_model(self, model_id: str) -> PaiModelState:
        """The model's state (KeyError when unknown)."""
        return self.pai_models[model_id]

    def get_pai_version(self, model_id: str, version_name: str) -> dict[str, Any]:
        """A copy of one PAI version's wire dict (KeyError when unknown)."""
        self.tick()
        with self.lock:
            return json.loads(self.pai_models[model_id].by_name[version_name].json())  # type: ignore[no-any-return]

    def pai_versions(self, model_id: str) -> list[dict[str, Any]]:
        """Copies of all versions of a PAI model, oldest first."""
        self.tick()
        with self.lock:
            return [json.loads(v.json()) for v in self.pai_models[model_id].versions]

    def set_approval(self, model_id: str, version_name: str, status: str) -> None:
        """Force a version's ``ApprovalStatus`` (test control: the terminal rule does not apply here)."""
        normalised = normalise_status(status)
        if normalised is None:
            raise ValueError(f"unknown approval status {status!r}")
        with self.lock:
            version = self.pai_models[model_id].by_name[version_name]
            version.data["ApprovalStatus"] = normalised
            version.data["GmtModifiedTime"] = iso_ms(datetime.now(timezone.utc))
            version.touch()

    def add_pai_version(self, model_id: str, version: Mapping[str, Any]) -> dict[str, Any]:
        """Add a version (wire fields; ``GmtCreateTime`` defaults to now, ``ApprovalStatus`` to Pending).

        :raises SeedError: for an invalid version (path ``$``).
        :raises KeyError: for an unknown model.
        """
        with self.lock:
            state = self.pai_models[model_id]
            vs = self._make_pai_version(state, dict(version), "$")
            state.add(vs)
            return dict(vs.data)

    def add_pai_model(self, model: Mapping[str, Any]) -> None:
        """Add a PAI model in seed shape (``Versions``, ``generate_versions`` allowed)."""
        with self.lock:
            self._load_pai_model(dict(model), "$")
            self._schedule.sort(key=lambda s: s.after)

    def add_fabric_version(self, workspace_id: str, model_id: str, version: Mapping[str, Any]) -> dict[str, Any]:
        """Add a Fabric version (wire fields; ``id`` required, ``create_time`` defaults to now)."""
        with self.lock:
            state = self.workspaces[workspace_id][model_id]
            vs = self._make_fabric_version(dict(version), "$")
            if any(v.data["id"] == vs.data["id"] for v in state.versions):
                raise SeedError("$.id", f"duplicate version id {vs.data['id']!r}")
            state.add(vs)
            return dict(vs.data)

    def create_fabric_version(self, model: FabricModelState, version: dict[str, Any]) -> str:
        """Start creating a Fabric version (listed after :attr:`version_delay`; failed when :attr:`fabric_fail_next`
        says so); returns its id. ``create_time`` is now; ``_then`` is the time it lists."""
        with self.lock:
            created = to_ms(datetime.now(timezone.utc))
            data = {"id": str(uuid.uuid4()), **version, "cap_white_list": [], "create_time": iso_ms(created)}
            if self.fabric_fail_next > 0:
                self.fabric_fail_next -= 1
                data["status"] = "FAILED"
            state = FabricVersionState(data=data, created=created.timestamp(), seq=self._next_seq())
            self._fabric_pending.append((time.monotonic() + self.version_delay, model, state))
            self._list_done_versions()
            return str(data["id"])

    def _list_done_versions(self) -> None:
        with self.lock:
            now = time.monotonic()
            due = [item for item in self._fabric_pending if item[0] <= now]
            self._fabric_pending = [item for item in self._fabric_pending if item[0] > now]
            for _, model, version in due:
                model.add(version)
                if model.meta.get("current_version_id") is None and model.good() == [version]:
                    model.meta["current_version_id"] = version.data["id"]  # a new model's first good version

    def fail_next_fabric_versions(self, count: int = 1) -> None:
        """Make the next ``count`` Fabric versions fail."""
        with self.lock:
            self.fabric_fail_next = count

    def fabric_versions(self, workspace_id: str, model_id: str) -> list[dict[str, Any]]:
        """Copies of all versions of a Fabric model, in server order."""
        with self.lock:
            return [json.loads(v.json()) for v in self.workspaces[workspace_id][model_id].versions]

    def issue_temporary_key(self, vendor: str, lifetime: float, *, issuer: str) -> TemporaryKeyState:
        """Issue a temporary key of ``vendor`` (``pai``/``fabric``) valid for ``lifetime`` seconds."""
        prefix = "STS." if vendor == "pai" else "TMP"
        state = TemporaryKeyState(
            vendor=vendor,
            key_id=prefix + secrets.token_hex(10).upper(),
            secret=secrets.token_urlsafe(24),
            token=secrets.token_urlsafe(48),
            issued_at=time.time(),
            expires_at=time.time() + lifetime,
            issuer=issuer,
        )
        with self.lock:
            self.temporary_keys[state.key_id] = state
        return state

    def temporary_key(self, vendor: str, key_id: str) -> TemporaryKeyState | None:
        """An issued temporary key of ``vendor`` by id, expired or not."""
        with self.lock:
            state = self.temporary_keys.get(key_id)
        return state if state is not None and state.vendor == vendor else None

    def expire_tokens(self) -> None:
        """Make every issued IAM token expired now."""
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = 0.0

    def iter_pai_models(self) -> Iterator[PaiModelState]:
        return iter(list(self.pai_models.values()))
