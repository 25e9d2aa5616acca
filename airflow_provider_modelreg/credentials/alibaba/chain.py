"""The default chain, in the official library's order (``alibabacloud_credentials/provider/default.py``), decided
once when the hook builds its transport."""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_modelreg.credentials.alibaba.checks import (
    _ROLE_NAME,
    PROFILE_FILE_CAP,
    Clock,
    _text,
    check_duration,
    check_oidc_provider_arn,
    check_role_arn,
    check_session_name,
)
from airflow_provider_modelreg.credentials.alibaba.config import (
    AlibabaCredentialConfig,
    _env_sts_endpoint,
    _sts_region_endpoint,
    _Transports,
)
from airflow_provider_modelreg.credentials.alibaba.rpc_auth import _UNSIGNED, RpcSignatureAuth
from airflow_provider_modelreg.credentials.alibaba.sources import (
    AssumedRole,
    CredentialsUriSource,
    EcsRamRoleSource,
    EcsThenUriSource,
    OidcRoleArnSource,
    RamRoleArnSource,
)
from airflow_provider_modelreg.credentials.base import (
    CredentialSourceError,
    TemporaryKey,
    digest,
    mask_derived,
    read_small_file,
)
from airflow_provider_modelreg.errors import RegistryConnectionConfigError


@dataclass(frozen=True)
class Resolved:
    """What a configuration resolves to: a static key, or a source to refresh.

    :param label: for ``test_connection`` and logs, e.g. ``default_chain -> oidc_role_arn (environment)``.
    """

    label: str
    key: TemporaryKey | None = None
    source: Any = None


def _static(name: str, label: str, key_id: str, secret: str, token: str | None) -> Resolved:
    mask_derived(secret, token)
    kind = "sts" if token else "access_key"
    return Resolved(label, key=TemporaryKey(key_id, secret, token, source=name if name != "default_chain" else kind))


#: what a CLI profile of each role mode gives besides the role (field names as in the profile)
_CLI_ROLE_FIELDS = {
    "RamRoleArn": ("access_key_id", "access_key_secret", "external_id"),
    "OIDC": ("oidc_provider_arn", "oidc_token_file"),
}


class _Chain:
    """The official library's order, decided once (``DefaultCredentialsProvider.__init__`` and its first
    ``get_credentials``): the first provider that applies wins; one whose configuration is absent is skipped."""

    NAME = "default_chain"

    def __init__(
        self, config: AlibabaCredentialConfig, transports: _Transports, env: Mapping[str, str], clock: Clock | None
    ) -> None:
        self.config = config
        self.transports = transports
        self.env = env
        self.clock = clock
        self.skipped: list[str] = []

    def _env(self, name: str) -> str | None:
        value = self.env.get(name)
        return value if value else None

    def _label(self, picked: str, where: str) -> str:
        return f"{self.NAME} -> {picked} ({where})"

    def _fail(self, step: str) -> CredentialSourceError:
        return CredentialSourceError(self.NAME, step)

    def _read_profile(self, path: str) -> bytes | None:
        """A profile file's bytes (None when there is none), capped and opened without blocking.

        :raises CredentialSourceError: the file is a FIFO or device, or larger than :data:`PROFILE_FILE_CAP`.
        """
        try:
            return read_small_file(path, PROFILE_FILE_CAP)
        except OSError:
            return None
        except Exception as exc:  # _FileRefused: not a regular file, or too large
            raise self._fail(f"profile file refused: {path}: {exc}") from None

    def _value(self, value: Any, where: str, *, secret: bool = False) -> str | None:
        try:
            return _text(value, where, secret=secret)
        except RegistryConnectionConfigError as exc:
            raise self._fail(f"{where}: {exc.rule}") from None

    def resolve(self) -> Resolved:
        for step in (self._environment, self._oidc_environment, self._cli_profile, self._profile_file):
            found = step()
            if found is not None:
                return found
        ecs = self._ecs()
        uri_value = self._env("ALIBABA_CLOUD_CREDENTIALS_URI")
        uri = None if uri_value is None else self._uri(uri_value, "ALIBABA_CLOUD_CREDENTIALS_URI", "environment")
        if ecs is not None and uri is not None:
            # the library tries ECS and moves on to the URI when it fails: decided by one probe at the first fetch
            source = EcsThenUriSource(ecs=ecs.source, uri=uri.source, probe=self.transports.probe(self.config))
            return Resolved(
                self._label("ecs_ram_role, else credentials_uri", "instance metadata, environment"), source=source
            )
        if ecs is not None:
            return ecs
        if uri is not None:
            return uri
        raise self._fail(
            "unable to load credentials from any of the providers in the chain: " + "; ".join(self.skipped)
        )

    # -- providers, in the library's order

    def _environment(self) -> Resolved | None:
        key_id = self._value(self._env("ALIBABA_CLOUD_ACCESS_KEY_ID"), "ALIBABA_CLOUD_ACCESS_KEY_ID")
        secret = self._value(
            self._env("ALIBABA_CLOUD_ACCESS_KEY_SECRET"), "ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret=True
        )
        if key_id is None or secret is None:
            self.skipped.append("environment: ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET not set")
            return None
        token = self._value(self._env("ALIBABA_CLOUD_SECURITY_TOKEN"), "ALIBABA_CLOUD_SECURITY_TOKEN", secret=True)
        kind = "sts" if token else "access_key"
        return _static(self.NAME, self._label(kind, "environment ALIBABA_CLOUD_ACCESS_KEY_ID"), key_id, secret, token)

    def _oidc_environment(self) -> Resolved | None:
        names = ("ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE")
        role_arn, provider_arn, token_file = (self._env(n) for n in names)
        if role_arn is None or provider_arn is None or token_file is None:
            self.skipped.append("OIDC: ALIBABA_CLOUD_ROLE_ARN/_OIDC_PROVIDER_ARN/_OIDC_TOKEN_FILE not all set")
            return None
        return self._oidc(
            {
                "role_arn": role_arn,
                "oidc_provider_arn": provider_arn,
                "oidc_token_file": token_file,
                "role_session_name": self._env("ALIBABA_CLOUD_ROLE_SESSION_NAME"),
            },
            "environment ALIBABA_CLOUD_OIDC_*",
            None,
        )

    def _cli_profile(self) -> Resolved | None:
        if self.env.get("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "false").lower() == "true":
            self.skipped.append("CLI profile: disabled")
            return None
        path = os.path.join(_home(self.env), ".aliyun", "config.json")
        raw = self._read_profile(path)
        try:
            config = None if raw is None else json.loads(raw)
        except (ValueError, RecursionError):
            config = None
        if config is None:
            self.skipped.append(f"CLI profile: {path} not found or not JSON")
            return None
        wanted = self._env("ALIBABA_CLOUD_PROFILE") or (config.get("current") if isinstance(config, dict) else None)
        profiles = config.get("profiles") if isinstance(config, dict) else None
        for profile in profiles if isinstance(profiles, list) else []:
            if isinstance(profile, dict) and wanted and profile.get("name") == wanted:
                return self._cli_mode(profile, f"CLI profile {wanted!r} in {path}")
        self.skipped.append(f"CLI profile: no profile {wanted!r} in {path}")
        return None

    def _cli_mode(self, profile: Mapping[str, Any], where: str) -> Resolved:
        """The modes of ``CLIProfileCredentialsProvider._get_credentials_provider`` this package supports."""
        mode = profile.get("mode")
        get = profile.get
        if mode in ("AK", "StsToken"):
            key_id = self._value(get("access_key_id"), f"{where}: access_key_id")
            secret = self._value(get("access_key_secret"), f"{where}: access_key_secret", secret=True)
            token = self._value(get("sts_token"), f"{where}: sts_token", secret=True) if mode == "StsToken" else None
            if key_id is None or secret is None or (mode == "StsToken" and token is None):
                raise self._fail(
                    f"{where}: mode {mode} needs access_key_id, access_key_secret"
                    + (", sts_token" if mode == "StsToken" else "")
                )
            return _static(self.NAME, self._label("sts" if token else "access_key", where), key_id, secret, token)
        if mode == "EcsRamRole":
            return self._ecs_source(get("ram_role_name"), where)
        if mode in ("RamRoleArn", "OIDC"):
            ram = mode == "RamRoleArn"
            # the arguments of _ram_role and _oidc from the profile's fields (the library's names): the role's,
            # then the mode's own
            values = {
                "role_arn": get("ram_role_arn"),
                "role_session_name": get("ram_session_name" if ram else "role_session_name"),
                "duration_seconds": get("expired_seconds"),
                "policy": get("policy"),
            }
            values.update((field, get(field)) for field in _CLI_ROLE_FIELDS[mode])
            endpoint = _sts_region_endpoint(get("sts_region"), bool(get("enable_vpc")))
            return self._ram_role(values, where, endpoint) if ram else self._oidc(values, where, endpoint)
        raise self._fail(
            f"{where}: mode {str(mode)!r:.40} is not supported (supported: AK, StsToken, RamRoleArn, EcsRamRole, OIDC)"
        )

    def _profile_file(self) -> Resolved | None:
        path = self._env("ALIBABA_CLOUD_CREDENTIALS_FILE") or os.path.join(
            _home(self.env), ".alibabacloud", "credentials.ini"
        )
        section_name = self._env("ALIBABA_CLOUD_PROFILE") or "default"
        parser = configparser.ConfigParser()
        raw = self._read_profile(path)
        try:
            if raw is not None:
                parser.read_string(raw.decode("utf-8"), path)
        except (configparser.Error, UnicodeDecodeError):
            self.skipped.append(f"profile file: {path} could not be parsed")
            return None
        if not parser.has_section(section_name):
            self.skipped.append(f"profile file: no section [{section_name}] in {path}")
            return None
        # ProfileCredentialsProvider's _load_ini: a value is cut at '#'
        section = {k: v.split("#")[0].strip() for k, v in parser.items(section_name)}
        where = f"profile [{section_name}] in {path}"
        kind = section.get("type")
        if kind == "access_key":
            return self._cli_mode({"mode": "AK", **section}, where)
        if kind == "ram_role_arn":
            return self._ram_role(section, where, None)
        if kind == "oidc_role_arn":
            return self._oidc({**section, "oidc_token_file": section.get("oidc_token_file_path")}, where, None)
        if kind == "ecs_ram_role":
            return self._ecs_source(section.get("role_name"), where)
        raise self._fail(
            f"{where}: type {str(kind)!r:.40} is not supported (supported: access_key, ram_role_arn, oidc_role_arn, "
            "ecs_ram_role)"
        )

    def _ecs(self) -> Resolved | None:
        if self.env.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false").lower() == "true":
            self.skipped.append("ECS RAM role: ALIBABA_CLOUD_ECS_METADATA_DISABLED=true")
            return None
        return self._ecs_source(self._env("ALIBABA_CLOUD_ECS_METADATA"), "instance metadata")

    # -- source builders (profile values are checked like extras, named by where they come from)

    def _sts_endpoint(self, fallback: str | None) -> str | None:
        return self.config.sts_endpoint or fallback or _env_sts_endpoint(self.env)

    def _ram_role(self, values: Mapping[str, Any], where: str, endpoint: str | None) -> Resolved:
        key_id = self._value(values.get("access_key_id"), f"{where}: access_key_id")
        secret = self._value(values.get("access_key_secret"), f"{where}: access_key_secret", secret=True)
        role_arn = self._value(values.get("role_arn"), f"{where}: role_arn")
        if key_id is None or secret is None or role_arn is None:
            raise self._fail(f"{where}: RAM role needs access_key_id, access_key_secret and role_arn")
        mask_derived(secret)
        try:
            check_role_arn(role_arn, f"{where}: role_arn")
            session = check_session_name(_text(values.get("role_session_name"), "role_session_name"))
            duration = check_duration(values.get("duration_seconds"), f"{where}: duration_seconds")
        except RegistryConnectionConfigError as exc:
            raise self._fail(str(exc)) from None
        source = RamRoleArnSource(
            sts=self.transports.sts(self._sts_endpoint(endpoint), RpcSignatureAuth(key_id, secret)),
            base_key_digest=digest(key_id, secret),
            role=AssumedRole(role_arn, session, duration, values.get("policy") or None),
            external_id=values.get("external_id") or None,
            name=f"{self.NAME}/ram_role_arn",
            clock=self.clock,
        )
        return Resolved(self._label("ram_role_arn", where), source=source)

    def _oidc(self, values: Mapping[str, Any], where: str, endpoint: str | None) -> Resolved:
        role_arn = self._value(values.get("role_arn"), f"{where}: role_arn")
        provider = self._value(values.get("oidc_provider_arn"), f"{where}: oidc_provider_arn")
        token_file = self._value(values.get("oidc_token_file"), f"{where}: oidc_token_file")
        if role_arn is None or provider is None or token_file is None:
            raise self._fail(f"{where}: OIDC needs role_arn, oidc_provider_arn and oidc_token_file")
        try:
            check_role_arn(role_arn, f"{where}: role_arn")
            check_oidc_provider_arn(provider, f"{where}: oidc_provider_arn")
            session = check_session_name(_text(values.get("role_session_name"), f"{where}: role_session_name"))
            duration = check_duration(values.get("duration_seconds"), f"{where}: duration_seconds")
        except RegistryConnectionConfigError as exc:
            raise self._fail(str(exc)) from None
        source = OidcRoleArnSource(
            sts=self.transports.sts(self._sts_endpoint(endpoint), _UNSIGNED),
            role=AssumedRole(role_arn, session, duration, values.get("policy") or None),
            oidc_provider_arn=provider,
            oidc_token_file=token_file,
            name=f"{self.NAME}/oidc_role_arn",
            clock=self.clock,
        )
        return Resolved(self._label("oidc_role_arn", where), source=source)

    def _ecs_source(self, role_name: Any, where: str) -> Resolved:
        role = self._value(role_name, f"{where}: role name")
        if role is not None and _ROLE_NAME.fullmatch(role) is None:
            raise self._fail(f"{where}: role name must be 1-64 characters of A-Z a-z 0-9 . @ - _")
        source = EcsRamRoleSource(
            metadata=self.transports.metadata(self.config.metadata_endpoint),
            role_name=role,
            name=f"{self.NAME}/ecs_ram_role",
            clock=self.clock,
        )
        return Resolved(self._label("ecs_ram_role", where), source=source)

    def _uri(self, uri: str, field_name: str, where: str) -> Resolved:
        value = self._value(uri, field_name, secret=True)
        assert value is not None
        mask_derived(value)
        try:
            transport, path, params = self.transports.service(value, field_name)
        except RegistryConnectionConfigError as exc:
            raise self._fail(str(exc)) from None
        source = CredentialsUriSource(
            service=transport,
            path=path,
            params=params,
            uri_digest=digest(value),
            name=f"{self.NAME}/credentials_uri",
            clock=self.clock,
        )
        return Resolved(self._label("credentials_uri", where), source=source)


def _home(env: Mapping[str, str]) -> str:
    """``auth_util.get_home`` (POSIX part): ``HOME``, else ``HOMEPATH``, else the user's home."""
    return env.get("HOME") or env.get("HOMEPATH") or os.path.expanduser("~")


def resolve_default_chain(
    config: AlibabaCredentialConfig,
    transport_options: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> Resolved:
    """Decide which provider of the library's default chain applies (no request is sent).

    :raises CredentialSourceError: no provider applies (each one's reason is listed), or a profile names a mode
        this package does not support, or a profile's values are malformed.
    """
    return _Chain(config, _Transports(transport_options), os.environ if env is None else env, clock).resolve()
