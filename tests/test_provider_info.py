"""Provider registration: ``get_provider_info()`` against Airflow's own JSON schemas, the entry point and the CLI.

The schemas are the ones shipped inside airflow-core:

* ``provider_info.schema.json``: what ProvidersManager validates at runtime (loose: no ``conn-fields`` rules);
* ``provider.yaml.schema.json``: the stricter dev schema; its ``connection-types`` item definition describes
  ``conn-fields`` and ``ui-field-behaviour``;
* ``customized_form_field_behaviours.schema.json``: what ProvidersManager checks ``ui-field-behaviour`` against after
  converting it to snake case (a failure there is only logged as a warning and the behaviour silently dropped).

Every validator is also fed a broken document, so a validator that accepts anything cannot pass these tests.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from airflow_provider_modelreg import __version__
from airflow_provider_modelreg.get_provider_info import get_provider_info

DIST_NAME = "airflow-provider-modelreg"
PKG = "airflow_provider_modelreg"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "airflow_provider_modelreg"
AIRFLOW_DIR = Path(airflow.__file__).resolve().parent
PROVIDER_YAML_URI = "urn:airflow-core:provider.yaml.schema.json"
CONN_TYPE_ITEM_POINTER = "/properties/connection-types/items"

# conn-field names that would hold a credential; such a field must be rendered masked and flagged sensitive
# (``credential_source`` names a kind of credential, it holds none)
SECRET_NAME = re.compile(
    r"secret|token|password|passwd|credential(?!_source$)|private|(^|_)sk$|access_?key", re.IGNORECASE
)
#: extras that are not named like secrets but may carry one (a proxy URL with user:password@)
MAY_HOLD_A_SECRET = frozenset({"proxy"})


def _load(name: str) -> dict[str, Any]:
    path = AIRFLOW_DIR / name
    assert path.is_file(), f"{name} is not shipped in airflow-core at {path}"
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def info() -> dict[str, Any]:
    return get_provider_info()


@pytest.fixture(scope="module")
def runtime_validator() -> jsonschema.Draft7Validator:
    schema = _load("provider_info.schema.json")
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def provider_yaml_schema() -> dict[str, Any]:
    schema = _load("provider.yaml.schema.json")
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


@pytest.fixture(scope="module")
def conn_type_validator(provider_yaml_schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    """Validator for one ``connection-types`` entry, resolving refs inside the provider.yaml document."""
    # The item definition must be where we point, and be the strict one (with conn-fields / ui-field-behaviour).
    item = provider_yaml_schema
    for part in CONN_TYPE_ITEM_POINTER.strip("/").split("/"):
        item = item[part]
    assert {"conn-fields", "ui-field-behaviour"} <= set(item["properties"]), item["properties"].keys()

    registry: Registry[Any] = Registry().with_resource(
        PROVIDER_YAML_URI, Resource.from_contents(provider_yaml_schema, default_specification=DRAFT7)
    )
    return jsonschema.Draft7Validator({"$ref": f"{PROVIDER_YAML_URI}#{CONN_TYPE_ITEM_POINTER}"}, registry=registry)


@pytest.fixture(scope="module")
def behaviour_validator() -> jsonschema.Draft7Validator:
    schema = _load("customized_form_field_behaviours.schema.json")
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


#: why the strict-schema tests need Airflow 3.2
STRICT_SCHEMA = (
    "provider.yaml.schema.json defines conn-fields/ui-field-behaviour from Airflow 3.2 "
    "(older runtime schemas accept them)"
)
#: where ProvidersManager gets our connection form from
FORM_SOURCES = (
    "the form reaches ProvidersManager from the hook's form methods on Airflow 2 and from conn-fields from 3.2; "
    "3.0/3.1 render hook widgets only with the FAB provider"
)


def _conn_types(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["connection-type"]: entry for entry in info["connection-types"]}


def _errors(validator: jsonschema.Draft7Validator, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(instance)]


def _as_customized_fields(behaviour: dict[str, Any]) -> dict[str, Any]:
    """What ProvidersManager._add_customized_fields builds before validating (kebab-case -> snake_case)."""
    return {
        "hidden_fields": behaviour.get("hidden-fields", []),
        "relabeling": behaviour.get("relabeling", {}),
        "placeholders": behaviour.get("placeholders", {}),
    }


# ------------------------------------------------------------------------------------------------ positive checks


def test_provider_info_matches_runtime_schema(info: dict[str, Any], runtime_validator: Any) -> None:
    assert _errors(runtime_validator, info) == []


@pytest.mark.requires_airflow("3.2", reason=STRICT_SCHEMA)
def test_each_connection_type_matches_strict_item_schema(info: dict[str, Any], conn_type_validator: Any) -> None:
    assert info["connection-types"], "no connection types declared"
    for entry in info["connection-types"]:
        assert _errors(conn_type_validator, entry) == [], entry["connection-type"]


@pytest.mark.requires_airflow("3.2", reason=STRICT_SCHEMA)
def test_provider_info_is_a_valid_provider_yaml_once_release_keys_are_added(
    info: dict[str, Any], provider_yaml_schema: dict[str, Any]
) -> None:
    """The strict schema forbids unknown top-level keys: the runtime dict must not carry any."""
    document = {**copy.deepcopy(info), "state": "ready", "source-date-epoch": 0}
    assert _errors(jsonschema.Draft7Validator(provider_yaml_schema), document) == []


def test_ui_field_behaviour_passes_the_check_providers_manager_applies(
    info: dict[str, Any], behaviour_validator: Any
) -> None:
    for conn_type, entry in _conn_types(info).items():
        customized = _as_customized_fields(entry["ui-field-behaviour"])
        assert _errors(behaviour_validator, customized) == [], conn_type


def test_package_name_and_version_match_the_installed_distribution(info: dict[str, Any]) -> None:
    assert info["package-name"] == DIST_NAME
    dist = importlib.metadata.distribution(DIST_NAME)
    # ProvidersManager compares against the canonical distribution name; a mismatch breaks every CLI command
    assert re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower() == info["package-name"]
    assert info["versions"][0] == dist.version == __version__


@pytest.mark.parametrize(
    ("conn_type", "hook_path"),
    [
        ("pai", "airflow_provider_modelreg.hooks.pai.PaiModelRegistryHook"),
        ("huaweicloud_fabric", "airflow_provider_modelreg.hooks.fabric.FabricModelRegistryHook"),
    ],
)
def test_connection_type_hook_is_importable_and_consistent(
    info: dict[str, Any], conn_type: str, hook_path: str
) -> None:
    entry = _conn_types(info)[conn_type]
    assert entry["hook-class-name"] == hook_path
    module_name, _, class_name = entry["hook-class-name"].rpartition(".")
    hook_cls = getattr(importlib.import_module(module_name), class_name)
    assert hook_cls.conn_type == conn_type
    assert hook_cls.hook_name == entry["hook-name"]
    # ProvidersManager reads the conn id argument name from this attribute
    assert isinstance(hook_cls.conn_name_attr, str) and hook_cls.conn_name_attr
    assert isinstance(hook_cls.default_conn_name, str) and hook_cls.default_conn_name


def test_only_the_two_connection_types_are_declared(info: dict[str, Any]) -> None:
    names = [entry["connection-type"] for entry in info["connection-types"]]
    assert sorted(names) == ["huaweicloud_fabric", "pai"]


@pytest.mark.parametrize("conn_type", ["pai", "huaweicloud_fabric"])
def test_secrets_are_sensitive_or_kept_in_the_password_field(info: dict[str, Any], conn_type: str) -> None:
    entry = _conn_types(info)[conn_type]
    fields = entry["conn-fields"]
    # 1. every credential-like extra is rendered masked: Airflow sets is_sensitive from format == "password"
    for name, field in fields.items():
        if SECRET_NAME.search(name) or name in MAY_HOLD_A_SECRET:
            assert field["schema"].get("format") == "password", f"{conn_type}.{name} holds a secret but is not masked"
    assert fields["security_token"]["schema"]["format"] == "password"
    # 2. the long-lived secret (SK / AccessKey secret / IAM password) is the standard, encrypted password field,
    #    not a plain extra, and that field is shown (not hidden) under a meaningful label
    assert not {"password", "secret", "sk", "access_key_secret", "secret_key"} & set(fields)
    behaviour = entry["ui-field-behaviour"]
    assert "password" not in behaviour["hidden-fields"]
    assert "login" not in behaviour["hidden-fields"]
    assert re.search(r"secret|SK|password", behaviour["relabeling"]["password"], re.IGNORECASE)
    # 3. nothing non-secret is masked by mistake (a masked region/endpoint would be unreadable in the UI)
    for name, field in fields.items():
        if not SECRET_NAME.search(name) and name not in MAY_HOLD_A_SECRET:
            assert field["schema"].get("format") != "password", f"{conn_type}.{name} is masked but is not a secret"


@pytest.mark.parametrize("conn_type", ["pai", "huaweicloud_fabric"])
def test_conn_fields_are_optional_in_the_ui(info: dict[str, Any], conn_type: str) -> None:
    """A type without "null" makes the React form treat the field as required (seen on Airflow 3.3.2)."""
    for name, field in _conn_types(info)[conn_type]["conn-fields"].items():
        types = field["schema"]["type"]
        assert isinstance(types, list) and "null" in types, f"{conn_type}.{name}: {types!r}"
        if "enum" in field["schema"] and "default" in field["schema"]:
            assert field["schema"]["default"] in field["schema"]["enum"]


@pytest.mark.parametrize(
    ("conn_type", "sources"),
    [
        ("pai", ["hooks/pai.py", "hooks/eas.py"]),
        # the Fabric connection's settings are read in their own module since issue 21
        ("huaweicloud_fabric", ["hooks/fabric.py", "hooks/fabric_connection.py"]),
    ],
)
def test_every_extra_the_hook_reads_is_a_declared_conn_field(
    info: dict[str, Any], conn_type: str, sources: list[str]
) -> None:
    shared = ["hooks/base.py", "operators/base.py", "sensors/pai.py"]
    # endpoint_extra: the extra a PAI hook's host override is read from (endpoint, eas_endpoint)
    pattern = re.compile(
        r"""extra_str\([^,]+,\s*["'](\w+)["']\)|extras\.get\(["'](\w+)["']|endpoint_extra = ["'](\w+)["']"""
    )
    read: set[str] = set()
    for rel in sources + shared:
        for match in pattern.finditer((PACKAGE_DIR / rel).read_text()):
            read.add(match.group(1) or match.group(2) or match.group(3))
    assert {"region", "endpoint", "security_token", "max_attempts"} <= read  # the scan itself works
    assert read <= set(_conn_types(info)[conn_type]["conn-fields"]), read - set(
        _conn_types(info)[conn_type]["conn-fields"]
    )


@pytest.mark.requires_airflow("<3.0", "3.2", reason=FORM_SOURCES)
def test_providers_manager_flags_security_token_sensitive() -> None:
    """Airflow's own parser of conn-fields (what the UI and the secrets masker use) marks the token sensitive."""
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    for conn_type in ("pai", "huaweicloud_fabric"):
        ours = {k: w for k, w in widgets.items() if k.startswith(f"extra__{conn_type}__")}
        assert ours, f"no conn-fields of {conn_type} reached ProvidersManager"
        assert ours[f"extra__{conn_type}__security_token"].is_sensitive is True
        assert ours[f"extra__{conn_type}__region"].is_sensitive is False
        assert {w.package_name for w in ours.values()} == {DIST_NAME}
    behaviours = ProvidersManager().field_behaviours
    assert behaviours["pai"]["relabeling"]["password"] == "AccessKey secret"
    assert "huaweicloud_fabric" in behaviours


# ------------------------------------------------------------------------------------------------ the validators bite


def _mutate(document: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    """A deep copy with ``value`` set at ``path``; ``value is _DELETE`` removes the key."""
    broken = copy.deepcopy(document)
    target = broken
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return broken


_DELETE = object()
AIRFLOW_3_SCHEMA = pytest.mark.requires_airflow(
    "3.0", reason="Airflow 2's provider_info.schema.json does not describe operators and integrations"
)


def _assert_rejected_at(validator: jsonschema.Draft7Validator, broken: Any, path: list[Any]) -> None:
    """The broken document is rejected, and for the mutation itself (errors on the mutated path, above or below)."""
    errors = list(validator.iter_errors(broken))
    assert errors, f"mutation at {path} was accepted"
    for error in errors:
        where = list(error.absolute_path)
        shared = min(len(where), len(path))
        assert where[:shared] == path[:shared], f"unrelated error at {where}: {error.message}"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["name"], _DELETE),  # required
        (["description"], 42),  # wrong type for a required key
        (["package-name"], ["airflow-provider-modelreg"]),
        (["connection-types", 0, "hook-class-name"], _DELETE),
        (["connection-types", 1, "connection-type"], None),
        (["connection-types"], {"pai": "x"}),
        (["triggers", 0, "python-modules"], _DELETE),
        (["triggers", 0, "surprise"], 1),
        (["extra-links"], "airflow_provider_modelreg.links.PaiModelVersionLink"),
        pytest.param(
            ["operators", 0, "python-modules"], "airflow_provider_modelreg.operators.pai", marks=AIRFLOW_3_SCHEMA
        ),
        pytest.param(["integrations", 0, "integration-name"], 3, marks=AIRFLOW_3_SCHEMA),
    ],
    ids=[
        "no-name",
        "description-int",
        "package-name-list",
        "no-hook-class",
        "conn-type-null",
        "conn-types-dict",
        "trigger-no-modules",
        "trigger-extra-key",
        "links-str",
        "operator-modules-str",
        "integration-name-int",
    ],
)
def test_runtime_validator_rejects_broken_info(
    info: dict[str, Any], runtime_validator: Any, path: list[Any], value: Any
) -> None:
    _assert_rejected_at(runtime_validator, _mutate(info, path, value), path)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["hook-class-name"], 7),
        (["conn-fields", "region", "schema"], _DELETE),  # schema is required
        (["conn-fields", "region", "label"], ["Region"]),
        (["conn-fields", "security_token", "schema", "format"], "secret"),  # not a known format hint
        (["conn-fields", "security_token", "sensitive"], True),  # unknown key: only format=password masks
        (["conn-fields", "max_attempts", "schema", "minimum"], "1"),
        (["ui-field-behaviour", "hidden-fields"], ["bogus"]),
        (["ui-field-behaviour", "colour"], "red"),
    ],
    ids=[
        "hook-class-int",
        "field-no-schema",
        "label-list",
        "format-unknown",
        "sensitive-key",
        "minimum-str",
        "hidden-unknown",
        "behaviour-extra-key",
    ],
)
@pytest.mark.requires_airflow("3.2", reason=STRICT_SCHEMA)
def test_conn_type_validator_rejects_broken_entry(
    info: dict[str, Any], conn_type_validator: Any, path: list[Any], value: Any
) -> None:
    # the clean entry passes (proved above); the same validator must reject each broken copy
    for entry in info["connection-types"]:
        _assert_rejected_at(conn_type_validator, _mutate(entry, path, value), path)


@pytest.mark.requires_airflow("3.2", reason=STRICT_SCHEMA)
def test_ref_is_really_resolved(conn_type_validator: Any) -> None:
    """A validator whose $ref did not resolve would raise, not pass: prove it resolved to an object schema."""
    with pytest.raises(ValidationError):
        conn_type_validator.validate("not an object")
    with pytest.raises(ValidationError):
        conn_type_validator.validate({"connection-type": "x"})  # hook-class-name missing


def test_behaviour_validator_rejects_broken_behaviour(info: dict[str, Any], behaviour_validator: Any) -> None:
    behaviour = _as_customized_fields(_conn_types(info)["pai"]["ui-field-behaviour"])
    with pytest.raises(ValidationError):
        behaviour_validator.validate({**behaviour, "relabeling": {"password": 1}})
    with pytest.raises(ValidationError):
        behaviour_validator.validate({"relabeling": {}})  # hidden_fields required


def test_strict_provider_yaml_validator_rejects_unknown_top_level_key(
    info: dict[str, Any], provider_yaml_schema: dict[str, Any]
) -> None:
    document = {**copy.deepcopy(info), "state": "ready", "source-date-epoch": 0, "conn-types": []}
    with pytest.raises(ValidationError):
        jsonschema.Draft7Validator(provider_yaml_schema).validate(document)


# ------------------------------------------------------------------------------------------------ registration


def test_entry_point_is_registered_and_returns_the_same_info(info: dict[str, Any]) -> None:
    eps = [ep for ep in importlib.metadata.entry_points(group="apache_airflow_provider") if ep.dist is not None]
    ours = [ep for ep in eps if ep.dist is not None and ep.dist.metadata["Name"] == DIST_NAME]
    assert len(ours) == 1, [(ep.dist.metadata["Name"] if ep.dist else None, ep.value) for ep in eps]
    (ep,) = ours
    assert ep.value == "airflow_provider_modelreg.get_provider_info:get_provider_info"
    assert ep.load()() == info


def test_airflow_providers_list_shows_the_provider(tmp_path: Path) -> None:
    airflow_bin = Path(sys.executable).with_name("airflow")
    assert airflow_bin.exists(), airflow_bin
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/a.db",
    }
    result = subprocess.run(
        [str(airflow_bin), "providers", "list"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(DIST_NAME)]
    assert lines, result.stdout
    assert __version__ in lines[0]
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------------ lists vs the package

#: info key -> the Airflow base class whose public subclasses in the package it must list
_KINDS = ("hooks", "operators", "sensors", "triggers", "extra-links")


def _kind_of(cls: type) -> str | None:
    from airflow.providers.common.compat.sdk import BaseHook, BaseOperator, BaseOperatorLink, BaseSensorOperator
    from airflow.triggers.base import BaseTrigger

    if issubclass(cls, BaseSensorOperator):
        return "sensors"
    if issubclass(cls, BaseOperator):
        return "operators"
    if issubclass(cls, BaseTrigger):
        return "triggers"
    if issubclass(cls, BaseOperatorLink):
        return "extra-links"
    if issubclass(cls, BaseHook):
        return "hooks"
    return None


def _package_classes() -> dict[str, set[str]]:
    """Every public hook/operator/sensor/trigger/link class defined in the package, by kind.

    Public: the name has no leading underscore, is not an abstract class and is not a ``...Base`` class meant only
    for subclassing (``ModelRegistryHookBase``, ``RegistryOperatorBase``).
    """
    found: dict[str, set[str]] = {kind: set() for kind in _KINDS}
    package = importlib.import_module("airflow_provider_modelreg")
    for module_info in pkgutil.walk_packages(package.__path__, prefix="airflow_provider_modelreg."):
        module = importlib.import_module(module_info.name)
        for name, cls in vars(module).items():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__ or name.startswith("_"):
                continue
            if inspect.isabstract(cls) or name.endswith("Base"):
                continue
            kind = _kind_of(cls)
            if kind is not None:
                found[kind].add(f"{module.__name__}.{name}")
    return found


def _listing_problems(info: dict[str, Any], found: dict[str, set[str]]) -> list[str]:
    """What is wrong between the info's lists and the classes found in the package (empty: nothing)."""
    problems: list[str] = []
    integrations = {i["integration-name"] for i in info.get("integrations", [])}
    listed_modules: dict[str, set[str]] = {}
    for kind in ("hooks", "operators", "sensors", "triggers"):
        modules: set[str] = set()
        for entry in info.get(kind, []):
            if entry["integration-name"] not in integrations:
                problems.append(f"{kind}: integration {entry['integration-name']!r} is not in 'integrations'")
            modules.update(entry["python-modules"])
        listed_modules[kind] = modules
        for module_name in sorted(modules):
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                problems.append(f"{kind}: listed module {module_name} does not import: {exc}")
                continue
            if not any(c.rpartition(".")[0] == module.__name__ for c in found[kind]):
                problems.append(f"{kind}: listed module {module_name} defines no public {kind[:-1]} class")
        for class_path in sorted(found[kind]):
            if class_path.rpartition(".")[0] not in modules:
                problems.append(f"{kind}: {class_path} is not listed (add its module to get_provider_info)")
    listed_links = set(info.get("extra-links", []))
    for class_path in sorted(listed_links):
        module_name, _, name = class_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            problems.append(f"extra-links: {class_path} does not import: {exc!r}")
            continue
        if _kind_of(cls) != "extra-links":
            problems.append(f"extra-links: {class_path} is not a BaseOperatorLink")
    for class_path in sorted(found["extra-links"] - listed_links):
        problems.append(f"extra-links: {class_path} is not listed")
    for entry in info.get("connection-types", []):
        if entry["hook-class-name"] not in found["hooks"]:
            problems.append(f"connection-types: {entry['hook-class-name']} is not a public hook class of the package")
    return problems


@pytest.fixture(scope="module")
def package_classes() -> dict[str, set[str]]:
    return _package_classes()


def test_the_package_scan_finds_each_kind(package_classes: dict[str, set[str]]) -> None:
    """The scan itself works: at least one class of each kind, and the known base classes are left out."""
    for kind in _KINDS:
        assert package_classes[kind], f"no {kind} found in the package"
    everything = set().union(*package_classes.values())
    assert "airflow_provider_modelreg.hooks.base.ModelRegistryHookBase" not in everything
    assert "airflow_provider_modelreg.operators.base.RegistryOperatorBase" not in everything
    assert "airflow_provider_modelreg.sensors.pai.PaiModelVersionApprovedSensor" in package_classes["sensors"]


def test_lists_match_the_package(info: dict[str, Any], package_classes: dict[str, set[str]]) -> None:
    """Every listed module/class imports; every public hook/operator/sensor/trigger/link class is listed."""
    assert _listing_problems(info, package_classes) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda i: i["extra-links"].pop(), "extra-links: airflow_provider_modelreg."),
        (lambda i: i["extra-links"].append("airflow_provider_modelreg.links.GoneLink"), "GoneLink does not import"),
        (lambda i: i["extra-links"].append("airflow_provider_modelreg.hooks.pai.PaiModelRegistryHook"), "not a Base"),
        (lambda i: i["triggers"].clear(), "triggers: airflow_provider_modelreg.triggers.pai.Pai"),
        (
            lambda i: i["operators"][0]["python-modules"].append("airflow_provider_modelreg.operators.gone"),
            "not import",
        ),
        (lambda i: i["sensors"][0]["python-modules"].append("airflow_provider_modelreg.links"), "no public sensor"),
        (lambda i: i["hooks"][0].update({"integration-name": "Azure"}), "'Azure' is not in 'integrations'"),
    ],
    ids=["link-dropped", "link-renamed", "link-not-a-link", "triggers-dropped", "module-gone", "wrong-kind", "integ"],
)
def test_listing_check_reports_drift(
    info: dict[str, Any], package_classes: dict[str, set[str]], mutate: Any, expected: str
) -> None:
    broken = copy.deepcopy(info)
    mutate(broken)
    problems = _listing_problems(broken, package_classes)
    assert any(expected in p for p in problems), problems


def test_operator_links_are_listed(info: dict[str, Any], package_classes: dict[str, set[str]]) -> None:
    """Each link an operator or sensor attaches is a listed extra link (the UI resolves them by class path)."""
    attached: set[str] = set()
    for class_path in package_classes["operators"] | package_classes["sensors"]:
        module_name, _, name = class_path.rpartition(".")
        operator = getattr(importlib.import_module(module_name), name)
        for link in operator.operator_extra_links:
            attached.add(f"{type(link).__module__}.{type(link).__qualname__}")
    assert attached, "no operator attaches a link: the check would prove nothing"
    assert attached <= set(info["extra-links"]), attached - set(info["extra-links"])


def _airflow_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    airflow_bin = Path(sys.executable).with_name("airflow")
    assert airflow_bin.exists(), airflow_bin
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/a.db",
        # conftest's unit-test mode makes the CLI log a line on stdout, before the JSON
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # Airflow 3.0 logs its plugin set-up at INFO on stdout, before the JSON
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    return subprocess.run([str(airflow_bin), *args], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("command", "column", "expected"),
    [
        ("triggers", "class", {"airflow_provider_modelreg.triggers.pai"}),
        (
            "links",
            "extra_link_class_name",
            {
                "airflow_provider_modelreg.links.PaiModelVersionLink",
                "airflow_provider_modelreg.links.PaiModelLink",
                "airflow_provider_modelreg.links.FabricModelVersionLink",
            },
        ),
    ],
)
def test_airflow_providers_cli_lists_ours(
    tmp_path: Path, info: dict[str, Any], command: str, column: str, expected: set[str]
) -> None:
    """Through the installed entry point, as `airflow providers triggers|links` shows them to a user."""
    result = _airflow_cli(tmp_path, "providers", command, "--output", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)
    shown = {row[column] for row in rows if row[column].startswith("airflow_provider_modelreg.")}
    # what the CLI shows is what get_provider_info declares (so a rename there shows up here too)
    declared = (
        {m for entry in info["triggers"] for m in entry["python-modules"]}
        if command == "triggers"
        else set(info["extra-links"])
    )
    assert shown == declared
    assert expected <= shown, (expected, shown)
    if command == "triggers":
        ours = [row for row in rows if row["class"].startswith("airflow_provider_modelreg.")]
        assert {row["package_name"] for row in ours} == {DIST_NAME}
