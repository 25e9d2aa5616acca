"""The connection form in a real browser: Airflow 3's React UI in headless Chromium, driven by selenium.

:func:`run_ui_check` opens the connections page of a running ``airflow api-server``, opens "Add Connection" and, for
the ``pai`` and ``huaweicloud_fabric`` connection types, checks that every ``conn-fields`` entry of
``get_provider_info()`` is rendered as declared (label, description, not required, secret fields masked, enum
dropdowns with their options, number bounds, defaults) and that ``ui-field-behaviour`` is applied (relabelled and
placeholder Login/Password, hidden Host/Port/Schema). It then fills and saves a ``pai`` connection pointing at the
registry emulator, reads it back (REST and the Edit dialog), clicks the row's Test button and calls
``POST /api/v2/connections/test``: the saved connection must pass and a wrong secret must fail with the emulator's
signature error. Screenshots go to ``out/e2e/screenshots/`` (the results folder; the committed ones in ``docs/``
change only through ``make docs-screenshots``); on failure ``ui-failure.png`` and the page source are kept there.

Standalone (emulator + SQLite api-server in a temp AIRFLOW_HOME, all stopped at the end)::

    .venv/bin/python -m e2e.ui_check
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from airflow_provider_modelreg.get_provider_info import get_provider_info
from modelreg_emulator import DEMO_SEED_PATH

ROOT = Path(__file__).resolve().parents[1]
#: where the connection-form screenshots are written (results folder, ignored by git)
SCREENSHOTS = ROOT / "out" / "e2e" / "screenshots"
VIEWPORT = (1400, 1000)
WAIT_S = 20.0
PAGE_WAIT_S = 45.0
CONN_ID = "pai_e2e"
MASKED = "***"  # what the REST API returns instead of a stored password
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
)
# Airflow 3.3.2's row "Test" button sends ``port: Number(null)`` == 0 for a connection without a port and the API
# answers 400 "The host or port to test differs from the stored connection" (fixed upstream by apache/airflow#73298).
PORT_ZERO_BUG = "apache/airflow#73298: the UI's Test button sends port 0 for a port-less connection (400)"

T = TypeVar("T")


class UiCheckError(AssertionError):
    """The connection form check failed; the message names the step, the screenshot and the page source."""


def _log(message: str) -> None:
    print(f"[ui {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _connection_types() -> dict[str, dict[str, Any]]:
    return {ct["connection-type"]: ct for ct in get_provider_info()["connection-types"]}


def _demo_credentials() -> dict[str, dict[str, str]]:
    seed = json.loads(DEMO_SEED_PATH.read_text())
    return {"pai": seed["pai"]["credentials"][0], "fabric": seed["fabric"]["credentials"][0]}


# -- Chromium


def _chromium_paths() -> tuple[str, str]:
    """The Debian chromium and chromedriver binaries (installed with apt-get when missing and running as root)."""
    browser = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium")
    driver = os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver")
    if browser is None or driver is None:
        from e2e.stack import apt_install

        apt_install(["chromium", "chromium-driver"])
        browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        raise UiCheckError("chromium / chromedriver not found: apt-get install chromium chromium-driver")
    return browser, driver


@contextlib.contextmanager
def _chromium() -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fresh profile; every browser process is gone when the block exits."""
    browser, driver_path = _chromium_paths()
    profile = Path(tempfile.mkdtemp(prefix="modelreg-ui-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(executable_path=driver_path, log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        _set_viewport(driver, *VIEWPORT)
        yield driver
    finally:
        with contextlib.suppress(WebDriverException):
            driver.quit()
        chromedriver = service.process
        if chromedriver is not None and chromedriver.poll() is None:
            chromedriver.kill()
            chromedriver.wait(timeout=10)
        _kill_leftovers(str(profile))
        shutil.rmtree(profile, ignore_errors=True)


def _pids_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``marker``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, ValueError):
                stat = (proc / "stat").read_text()
                if stat[stat.rindex(")") + 2] != "Z" and marker in (proc / "cmdline").read_bytes().decode(
                    errors="replace"
                ):
                    pids.append(int(proc.name))
    return pids


def _kill_leftovers(marker: str) -> None:
    """SIGKILL, by pid, any browser process still running with our private profile dir; fail if one survives."""
    for pid in _pids_with(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while (left := _pids_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        raise UiCheckError(f"Chromium processes still running after quit: {left}")


def _set_viewport(driver: webdriver.Chrome, width: int, height: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


# -- page helpers


class _Page:
    """Explicit waits and lookups on the React (Chakra UI / react-select) connection pages."""

    def __init__(self, driver: webdriver.Chrome, docs_dir: Path) -> None:
        self.driver = driver
        self.docs_dir = docs_dir
        self.screenshots: list[str] = []

    def until(self, what: str, check: Callable[[webdriver.Chrome], T | None], timeout: float = WAIT_S) -> T:
        """Poll ``check`` until it returns something truthy (an explicit wait; no fixed sleeps anywhere)."""

        def probe(driver: webdriver.Chrome) -> T | bool:
            try:
                return check(driver) or False
            except StaleElementReferenceException:  # React re-rendered between lookup and use: look again
                return False

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(probe)  # type: ignore[return-value]
        except TimeoutException as exc:
            raise UiCheckError(f"timed out after {timeout:.0f} s waiting for {what}") from exc

    def visible(self, by: str, value: str, what: str, scope: WebElement | None = None) -> WebElement:
        root = scope or self.driver

        def find(_: webdriver.Chrome) -> WebElement | None:
            return next((e for e in root.find_elements(by, value) if e.is_displayed()), None)

        return self.until(what, find)

    def button(self, text: str, scope: WebElement | None = None) -> WebElement:
        return self.visible(By.XPATH, f".//button[normalize-space()='{text}']", f"button '{text}'", scope)

    def dialog(self, title: str) -> WebElement:
        return self.visible(By.XPATH, f"//*[@role='dialog'][.//h2[normalize-space()='{title}']]", f"dialog '{title}'")

    def expand(self, dialog: WebElement, section: str) -> WebElement:
        """Open an accordion section of the connection form (one is open at a time) and wait for it to settle."""
        trigger = self.button(section, dialog)
        if trigger.get_attribute("aria-expanded") != "true":
            trigger.click()
        region_id = trigger.get_attribute("aria-controls") or ""

        def opened(driver: webdriver.Chrome) -> WebElement | None:
            region = driver.find_element(By.ID, region_id)
            return region if region.is_displayed() and region.get_attribute("data-state") != "closed" else None

        region = self.until(f"section '{section}' to open", opened)
        self.settle(region, f"section '{section}'")
        return region

    def settle(self, element: WebElement, what: str) -> None:
        """Wait until the element's box stops changing (Chakra animates collapsibles and dialogs)."""
        last: list[Any] = [None]

        def stable(_: webdriver.Chrome) -> bool:
            rect = element.rect
            same = bool(rect == last[0])
            last[0] = rect
            return same

        self.until(f"{what} to stop moving", stable)

    def field_group(self, dialog: WebElement, name: str) -> WebElement:
        """The ``role=group`` field wrapper (label, input, helper text) of the form input called ``name``."""
        return self.until(
            f"form field '{name}'",
            lambda _: dialog.find_element(By.XPATH, f".//*[@name='{name}']/ancestor::*[@role='group'][1]"),
        )

    def select_option(self, combobox: WebElement, option: str) -> None:
        """Pick ``option`` in a react-select dropdown (typing filters it; the option is clicked)."""
        combobox.click()
        combobox.send_keys(option)
        self.visible(By.XPATH, f"//*[@role='option'][normalize-space()='{option}']", f"option '{option}'").click()

    def options_of(self, combobox: WebElement) -> list[str]:
        combobox.click()
        options = self.until(
            "the dropdown options", lambda d: [o.text for o in d.find_elements(By.CSS_SELECTOR, "[role=option]")]
        )
        # Escape would also close the dialog: move the focus away instead (react-select closes its menu on blur).
        self.driver.execute_script("arguments[0].blur()", combobox)
        self.until("the dropdown to close", lambda d: not d.find_elements(By.CSS_SELECTOR, "[role=option]"))
        return options

    def type_into(self, element: WebElement, value: str) -> None:
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        element.send_keys(value)
        # the value is not in the message: it may be a secret
        self.until(
            f"input {element.get_attribute('name')!r} to hold the typed value",
            lambda _: element.get_attribute("value") == value,
        )

    def screenshot(self, name: str, fit: WebElement | None = None) -> str:
        """Save ``<screenshots>/<name>``; with ``fit`` the viewport grows to show the whole element (a dialog)."""
        path = self.docs_dir / name
        if fit is not None:
            height = int(self.driver.execute_script("return Math.ceil(arguments[0].scrollHeight)", fit))
            _set_viewport(self.driver, VIEWPORT[0], max(VIEWPORT[1], min(height + 160, 4000)))
            self.settle(fit, "the dialog")
        try:
            if not self.driver.save_screenshot(str(path)):
                raise UiCheckError(f"could not save {path}")
        finally:
            if fit is not None:
                _set_viewport(self.driver, *VIEWPORT)
        shown = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        self.screenshots.append(shown)
        _log(f"screenshot {shown}")
        return shown


def _text(element: WebElement) -> str:
    """Whitespace-normalised textContent (unlike ``.text`` also read in collapsed, hidden sections)."""
    return " ".join((element.get_attribute("textContent") or "").split())


def _label(group: WebElement) -> str:
    """A field's label without the required-field marker."""
    return _text(group.find_element(By.TAG_NAME, "label")).removesuffix("*").strip()


# -- the form checks


def _check_standard_fields(page: _Page, dialog: WebElement, conn_type: dict[str, Any]) -> dict[str, Any]:
    behaviour = conn_type.get("ui-field-behaviour", {})
    relabel = behaviour.get("relabeling", {})
    placeholders = behaviour.get("placeholders", {})
    region = page.expand(dialog, "Standard Fields")
    found: dict[str, Any] = {}
    for name in ("login", "password"):
        element = page.visible(By.NAME, name, f"the {name} input", region)
        label = _label(page.field_group(dialog, name))
        expected = relabel.get(name, name.capitalize())
        assert label == expected, f"{conn_type['connection-type']}: {name} labelled {label!r}, expected {expected!r}"
        placeholder = element.get_attribute("placeholder") or ""
        if name in placeholders:
            assert placeholder == placeholders[name], f"{name} placeholder {placeholder!r}"
        found[name] = {"label": label, "type": element.get_attribute("type"), "placeholder": placeholder}
    assert found["password"]["type"] == "password", f"the password field is not masked: {found['password']}"
    hidden = behaviour.get("hidden-fields", [])
    shown = [name for name in hidden if dialog.find_elements(By.NAME, name)]
    assert not shown, f"{conn_type['connection-type']}: fields declared hidden are rendered: {shown}"
    found["hidden"] = hidden
    return found


def _check_extra_fields(page: _Page, dialog: WebElement, conn_type: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = conn_type["conn-fields"]
    kind = conn_type["connection-type"]
    page.expand(dialog, "Extra Fields")
    labels: dict[str, str] = {}
    masked: list[str] = []
    defaults: dict[str, str] = {}
    enums: dict[str, list[str]] = {}
    numbers: dict[str, list[str | None]] = {}
    for key, spec in fields.items():
        schema = spec["schema"]
        where = f"{kind}.{key}"
        group = page.field_group(dialog, f"element_{key}")
        assert group.is_displayed(), f"{where}: not displayed"
        label_element = group.find_element(By.TAG_NAME, "label")
        label = _label(group)
        assert label == spec["label"], f"{where}: label {label!r}, conn-fields declares {spec['label']!r}"
        assert label_element.get_attribute("data-required") is None, f"{where}: rendered as a required field"
        helper = _text(group.find_element(By.CSS_SELECTOR, "[data-part='helper-text']"))
        assert helper == " ".join(spec["description"].split()), f"{where}: description {helper!r}"
        labels[key] = label
        value_input = group.find_element(By.NAME, f"element_{key}")
        if "enum" in schema:
            combobox = group.find_element(By.CSS_SELECTOR, "input[role=combobox]")
            assert combobox.is_displayed(), f"{where}: the dropdown is not displayed"
            options = page.options_of(combobox)
            assert options == schema["enum"], f"{where}: options {options}, expected {schema['enum']}"
            enums[key] = options
        elif "integer" in schema["type"] or "number" in schema["type"]:
            assert value_input.get_attribute("role") == "spinbutton", f"{where}: not a number input"
            bounds = [value_input.get_attribute("aria-valuemin"), value_input.get_attribute("aria-valuemax")]
            assert bounds == [str(schema.get("minimum")), str(schema.get("maximum"))], f"{where}: bounds {bounds}"
            numbers[key] = bounds
        input_type = value_input.get_attribute("type")
        if schema.get("format") == "password":
            assert input_type == "password", f"{where}: secret field rendered as type={input_type!r}, not masked"
            masked.append(key)
        elif "enum" not in schema:
            assert input_type != "password", f"{where}: rendered masked but is not declared secret"
        if "default" in schema:
            shown = value_input.get_attribute("value")
            assert shown == str(schema["default"]), f"{where}: shows {shown!r}, default is {schema['default']!r}"
            if "enum" in schema:
                visible_value = _text(group.find_element(By.ID, f"element_{key}"))
                assert visible_value == str(schema["default"]), f"{where}: dropdown shows {visible_value!r}"
            defaults[key] = shown or ""
        else:
            assert not value_input.get_attribute("value"), f"{where}: not empty in a new connection"
    return {"labels": labels, "masked": masked, "defaults": defaults, "enum_options": enums, "number_bounds": numbers}


def _select_type(page: _Page, dialog: WebElement, hook_name: str, first_field: str) -> None:
    group = page.until(
        "the Connection Type field",
        lambda _: dialog.find_element(
            By.XPATH, ".//*[@role='group'][.//label[starts-with(normalize-space(), 'Connection Type')]]"
        ),
    )
    page.select_option(group.find_element(By.CSS_SELECTOR, "input[role=combobox]"), hook_name)
    page.until(f"'{hook_name}' to be selected", lambda _: hook_name in _text(group))
    page.until(f"the {hook_name} fields", lambda _: bool(dialog.find_elements(By.NAME, f"element_{first_field}")))


# -- REST helpers


def _rest(api_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _test_via_rest(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/api/v2/connections/test", json=body)
    if response.status_code != 200:
        raise UiCheckError(f"POST /api/v2/connections/test: {response.status_code} {response.text}")
    return dict(response.json())


# -- the check


def run_ui_check(api_url: str, emulator_url: str, docs_dir: Path) -> dict[str, Any]:
    """Check the ``pai`` / ``huaweicloud_fabric`` connection forms in headless Chromium; returns what was checked.

    Needs an api-server with ``[core] simple_auth_manager_all_admins = True`` (``GET /auth/token``) and
    ``[core] test_connection = Enabled``, and the registry emulator with the built-in demo credentials at
    ``emulator_url``. Leaves a ``pai_e2e`` connection in the metadata DB (replaced on the next run).
    """
    started = time.monotonic()
    api_url = api_url.rstrip("/")
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    (docs_dir / "ui-failure.png").unlink(missing_ok=True)
    types = _connection_types()
    creds = _demo_credentials()
    token = httpx.get(f"{api_url}/auth/token", timeout=30).raise_for_status().json()["access_token"]
    http = _rest(api_url, token)
    if http.delete(f"/api/v2/connections/{CONN_ID}").status_code not in (204, 404):
        raise UiCheckError(f"could not delete an old {CONN_ID} connection")
    result: dict[str, Any] = {"forms": {}}
    step = "start Chromium"
    with _chromium() as driver:
        page = _Page(driver, docs_dir)
        try:
            step = "open the UI with the token cookie"
            driver.set_page_load_timeout(PAGE_WAIT_S)
            driver.get(f"{api_url}/")
            driver.add_cookie({"name": "_token", "value": token, "path": "/"})
            driver.get(f"{api_url}/connections")
            add_xpath = "//button[normalize-space()='Add Connection']"
            page.until(
                "the connections page (or a login page)",
                lambda d: (
                    "login" in d.current_url or any(b.is_displayed() for b in d.find_elements(By.XPATH, add_xpath))
                ),
                PAGE_WAIT_S,
            )
            if "login" in driver.current_url:
                raise UiCheckError(
                    "the UI asked for a login: the _token cookie was not accepted (is the api-server running with "
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True?)"
                )

            step = "open the Add Connection dialog"
            page.button("Add Connection").click()
            dialog = page.dialog("Add Connection")

            for kind, shot in (
                ("pai", "connection-form-pai.png"),
                ("huaweicloud_fabric", "connection-form-fabric.png"),
            ):
                conn_type = types[kind]
                step = f"select connection type {kind}"
                _select_type(page, dialog, conn_type["hook-name"], next(iter(conn_type["conn-fields"])))
                step = f"check the {kind} standard fields"
                standard = _check_standard_fields(page, dialog, conn_type)
                step = f"check the {kind} conn-fields"
                extra = _check_extra_fields(page, dialog, conn_type)
                step = f"screenshot the {kind} form"
                result["forms"][kind] = {
                    "hook_name": conn_type["hook-name"],
                    "standard": standard,
                    **extra,
                    "screenshot": page.screenshot(shot, fit=dialog),
                }
                _log(f"{kind}: {len(extra['labels'])} conn-fields rendered as declared, masked {extra['masked']}")

            step = "fill the pai form"
            pai = types["pai"]
            pai_cred = creds["pai"]
            _select_type(page, dialog, pai["hook-name"], next(iter(pai["conn-fields"])))
            page.type_into(page.visible(By.NAME, "connection_id", "the Connection ID input", dialog), CONN_ID)
            standard_region = page.expand(dialog, "Standard Fields")
            page.type_into(
                page.visible(By.NAME, "login", "the login input", standard_region), pai_cred["access_key_id"]
            )
            page.type_into(
                page.visible(By.NAME, "password", "the password input", standard_region), pai_cred["access_key_secret"]
            )
            page.screenshot("connection-form-pai-filled.png", fit=dialog)
            extra_region = page.expand(dialog, "Extra Fields")
            wanted = {"endpoint": emulator_url, "region": "cn-hangzhou", "workspace_id": "ws-demo"}
            for key, value in wanted.items():
                page.type_into(page.visible(By.NAME, f"element_{key}", f"the {key} input", extra_region), value)
            network = page.field_group(dialog, "element_network")
            page.select_option(network.find_element(By.CSS_SELECTOR, "input[role=combobox]"), "public")
            page.until(
                "network = public",
                lambda _: network.find_element(By.NAME, "element_network").get_attribute("value") == "public",
            )
            page.type_into(page.visible(By.NAME, "element_max_attempts", "the retry budget input", extra_region), "3")

            step = "save the pai connection"
            save = page.button("Save", dialog)
            page.until("the Save button to be enabled", lambda _: save.is_enabled())
            save.click()
            page.until("the Add Connection dialog to close", lambda d: not _dialogs(d, "Add Connection"))
            row = page.visible(By.XPATH, f"//tr[.//td[normalize-space()='{CONN_ID}']]", f"the {CONN_ID} row")
            created = _notification(page, "Create Connection")
            assert created["type"] == "success", f"saving the connection: {created}"

            step = "read the saved connection back"
            saved = http.get(f"/api/v2/connections/{CONN_ID}").raise_for_status().json()
            saved_extra = json.loads(saved["extra"] or "{}")
            assert saved["conn_type"] == "pai" and saved["login"] == pai_cred["access_key_id"], saved
            assert saved["password"] == MASKED, "the API returned the stored secret in clear"
            expected_extra = {**wanted, "network": "public", "max_attempts": 3}
            wrong = {k: saved_extra.get(k) for k, v in expected_extra.items() if saved_extra.get(k) != v}
            assert not wrong, f"saved extra differs from the form: {wrong} (extra {saved_extra})"
            assert set(saved_extra) <= set(pai["conn-fields"]), f"unexpected extra keys: {saved_extra}"
            result["saved"] = {
                "connection_id": CONN_ID,
                "conn_type": saved["conn_type"],
                "extra": saved_extra,
                "notification": created,
            }

            step = "reopen the saved connection in the Edit dialog"
            row.find_element(By.CSS_SELECTOR, "button[aria-label='Edit Connection']").click()
            edit = page.dialog("Edit Connection")
            page.expand(edit, "Extra Fields")
            loaded = {
                key: edit.find_element(By.NAME, f"element_{key}").get_attribute("value") for key in expected_extra
            }
            assert loaded == {k: str(v) for k, v in expected_extra.items()}, f"Edit dialog shows {loaded}"
            result["saved"]["edit_form_values"] = loaded
            page.screenshot("connection-saved-pai.png", fit=edit)
            page.visible(By.CSS_SELECTOR, "button[aria-label='Close']", "the Close button", edit).click()
            page.until("the Edit dialog to close", lambda d: not _dialogs(d, "Edit Connection"))

            step = "click the Test button of the saved connection"
            row = page.visible(By.XPATH, f"//tr[.//td[normalize-space()='{CONN_ID}']]", f"the {CONN_ID} row")
            row.find_element(By.CSS_SELECTOR, "button[aria-label='Test Connection']").click()
            ui_test = _notification(page, "Test Connection")
            page.screenshot("connection-test-pai.png")
            if ui_test["type"] == "success":
                assert ui_test["message"].startswith("Connection OK"), ui_test
            else:
                # Only the known Airflow 3.3.2 bug is tolerated: reproduce the request the button sends.
                as_ui = {**_test_body(saved), "host": "", "port": 0, "schema": "", "description": ""}
                reproduced = http.post("/api/v2/connections/test", json=as_ui)
                if not (ui_test["message"] == "Bad Request" and reproduced.status_code == 400):
                    raise UiCheckError(f"the UI's connection test failed: {ui_test}")
                assert "differs from the stored connection" in reproduced.text, reproduced.text
                ui_test["known_airflow_bug"] = PORT_ZERO_BUG
            result["ui_test_button"] = ui_test
            _log(f"UI Test button: {ui_test}")

            step = "test the saved connection through the REST API"
            # The stored secret is used: the body carries the API's masked "***", as the UI's own requests do.
            ok = _test_via_rest(http, _test_body(saved))
            assert ok["status"] is True and ok["message"].startswith("Connection OK"), ok
            bad = _test_via_rest(
                http, {**_test_body(saved), "password": "wrong-" + pai_cred["access_key_secret"][::-1]}
            )
            assert bad["status"] is False, f"a wrong AccessKey secret passed the connection test: {bad}"
            assert "SignatureDoesNotMatch" in bad["message"], f"unexpected failure message: {bad}"
            assert pai_cred["access_key_secret"] not in bad["message"]
            fab_cred = creds["fabric"]
            fabric_extra: dict[str, Any] = {key: None for key in types["huaweicloud_fabric"]["conn-fields"]}
            fabric_extra.update(
                auth_type="aksk", endpoint=emulator_url, project_id=fab_cred["project_id"], workspace_id="ws-demo"
            )
            fabric = _test_via_rest(
                http,
                {
                    "connection_id": "fabric_e2e_unsaved",
                    "conn_type": "huaweicloud_fabric",
                    "login": fab_cred["ak"],
                    "password": fab_cred["sk"],
                    "extra": json.dumps(fabric_extra),
                },
            )
            assert fabric["status"] is True and fabric["message"].startswith("Connection OK"), fabric
            result["rest_test"] = {"saved_pai": ok, "wrong_secret_pai": bad, "fabric_unsaved": fabric}
            _log(f"REST test: saved {ok['message']!r}; wrong secret {bad['message']!r}")
        except Exception as exc:
            failure_png = docs_dir / "ui-failure.png"
            source = Path(tempfile.mkstemp(prefix="modelreg-ui-failure-", suffix=".html")[1])
            with contextlib.suppress(Exception):
                driver.save_screenshot(str(failure_png))
            with contextlib.suppress(Exception):
                source.write_text(f"<!-- {driver.current_url} -->\n{driver.page_source}")
            with contextlib.suppress(Exception):
                step += f" (page {driver.current_url})"
            raise UiCheckError(
                f"connection form check failed at step '{step}': {type(exc).__name__}: {exc}\n"
                f"  screenshot: {failure_png}\n  page source: {source}"
            ) from exc
        finally:
            http.close()
        result["screenshots"] = page.screenshots
    result["duration_s"] = round(time.monotonic() - started, 1)
    return result


def _notification(page: _Page, title_prefix: str) -> dict[str, str]:
    """Wait for the toast whose title starts with ``title_prefix`` and return its type, title and message."""

    def find(driver: webdriver.Chrome) -> dict[str, str] | None:
        for toast in driver.find_elements(By.CSS_SELECTOR, "[id^='toast:'][data-type]"):
            title = _text(toast.find_element(By.CSS_SELECTOR, "[id$=':title']"))
            kind = toast.get_attribute("data-type") or ""
            if title.startswith(title_prefix) and kind in ("success", "error") and toast.is_displayed():
                message = _text(toast.find_element(By.CSS_SELECTOR, "[id$=':description']"))
                return {"type": kind, "title": title, "message": message}
        return None

    return page.until(f"the '{title_prefix}' notification", find)


def _dialogs(driver: webdriver.Chrome, title: str) -> list[WebElement]:
    return [
        d
        for d in driver.find_elements(By.XPATH, f"//*[@role='dialog'][.//h2[normalize-space()='{title}']]")
        if d.is_displayed()
    ]


def _test_body(saved: dict[str, Any]) -> dict[str, Any]:
    keys = ("connection_id", "conn_type", "description", "host", "login", "password", "port", "schema", "extra")
    return {key: saved.get(key) for key in keys}


# -- standalone: emulator + SQLite api-server


class _Processes:
    """Child processes in their own process groups, stopped by pid: SIGTERM, then SIGKILL after 15 s."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, args: list[str], env: dict[str, str], stdout_pipe: bool = False
    ) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                args,
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log if stdout_pipe else subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        _log(f"started {name} (pid {proc.pid})")
        return proc

    def stop_all(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _log(f"{name} (pid {proc.pid}) still running after 15 s: SIGKILL")
            with contextlib.suppress(ProcessLookupError):  # the leader and whatever it forked
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            _log(f"stopped {name} (pid {proc.pid}, exit {proc.returncode})")

    def leftovers(self) -> list[str]:
        """Processes still alive in any of our process groups (as ``ps`` would list them)."""
        groups = {proc.pid for proc in self.procs.values()}
        alive = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (entry / "stat").read_text()
                    fields = stat[stat.rindex(")") + 2 :].split()
                    if fields[0] != "Z" and int(fields[2]) in groups:
                        alive.append(f"{entry.name} {(entry / 'cmdline').read_bytes()[:120]!r}")
        return alive


def _read_url(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode().strip() if ready else ""
    prefix = "modelreg-emulator listening on "
    if not line.startswith(prefix):
        raise RuntimeError(f"the emulator did not start: {line!r} (exit status {proc.poll()})")
    return line[len(prefix) :]


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the api-server exited with status {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the api-server was not healthy after {timeout:.0f} s")


def main() -> int:
    import base64
    import socket

    started = time.monotonic()
    airflow = str(Path(sys.executable).with_name("airflow"))
    home = Path(tempfile.mkdtemp(prefix="modelreg-ui-airflow-"))
    procs = _Processes(home)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": base64.b64encode(os.urandom(32)).decode(),
        }
    )
    ok = False
    try:
        emulator = procs.start("emulator", [sys.executable, "-m", "modelreg_emulator", "--port", "0"], env, True)
        emulator_url = _read_url(emulator, 30)
        _log(f"emulator at {emulator_url}; airflow db migrate (SQLite) ...")
        subprocess.run(
            [airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        api_url = f"http://127.0.0.1:{port}"
        api = procs.start("api-server", [airflow, "api-server", "-H", "127.0.0.1", "-p", str(port)], env)
        _wait_healthy(api_url, api, 120)
        _log(f"api-server healthy at {api_url} ({time.monotonic() - started:.0f} s)")
        result = run_ui_check(api_url, emulator_url, SCREENSHOTS)
        print(json.dumps(result, indent=2))
        ok = True
    finally:
        procs.stop_all()
        left = procs.leftovers()
        if not ok:
            for name in procs.procs:
                log = home / f"{name}.log"
                if log.exists():
                    _log(f"last lines of {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        shutil.rmtree(home, ignore_errors=True)
        if left:
            raise RuntimeError(f"processes still running after the stop: {left}")
        _log(f"nothing left running; {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
