"""The processes of an end-to-end run: PostgreSQL, the registry emulator and Airflow's services, stopped by pid."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def say(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # a service still starting answers with errors
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({last_error})" if last_error else "")
    )


def apt_install(packages: list[str]) -> None:
    """Install Debian packages (as root; waits for another apt run to release its lock)."""
    if os.geteuid() != 0:
        raise SystemExit(f"make e2e needs these Debian packages, install them as root: {' '.join(packages)}")
    say(f"Installing Debian packages: {' '.join(packages)} ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    subprocess.run(["apt-get", *lock, "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class Stack:
    """Starts processes in their own process groups and stops every one of them, by pid, at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pg_data: Path | None = None
        self.pg_bin: Path | None = None
        self.pg_user: list[str] = []

    # -- generic processes

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        self.procs[name] = proc
        say(f"started {name} (pid {proc.pid})")
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, grace: float = 20) -> None:
        """Signal the process group of ``name`` (the process and the children it forked), then make sure it is gone."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop after {grace:.0f} s: SIGKILL")
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        # children that outlived their leader (same process group) go too
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        say(f"stopped {name} (pid {proc.pid}, {signal.Signals(sig).name})")

    def stop_all(self) -> None:
        # the order Airflow recommends: scheduler, dag-processor, triggerer, api-server; then the rest
        for name in ("scheduler", "dag-processor", "triggerer", "api-server", *list(self.procs)):
            self.stop(name)
        self.stop_postgres()

    # -- PostgreSQL

    def start_postgres(self) -> str:
        """initdb + pg_ctl start on 127.0.0.1 (a private cluster under the work dir); returns the SQLAlchemy URL."""
        pg_bin = postgres_bin()
        if pg_bin is None:
            apt_install(["postgresql"])
            pg_bin = postgres_bin()
        assert pg_bin is not None
        self.pg_bin = pg_bin
        data = self.workdir / "pgdata"
        sockets = self.workdir / "pgsock"
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the account Debian's package created
            shutil.chown(data, "postgres", "postgres")
            shutil.chown(sockets, "postgres", "postgres")
            for parent in (self.workdir, *self.workdir.parents):  # postgres must be able to reach its data dir
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
            self.pg_user = ["runuser", "-u", "postgres", "--"]
        port = free_port()
        subprocess.run(
            [*self.pg_user, str(pg_bin / "initdb"), "-D", str(data), "-U", "airflow", "-A", "trust", "-E", "UTF8"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.pg_data = data
        subprocess.run(
            [
                *self.pg_user,
                str(pg_bin / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(data / "server.log"),
                "-o",
                f"-h 127.0.0.1 -p {port} -k {sockets}",
                "-w",
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        pid = int((data / "postmaster.pid").read_text().split()[0])
        say(f"started PostgreSQL (pid {pid}) on 127.0.0.1:{port}")
        subprocess.run(
            [*self.pg_user, str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"],
            check=True,
        )
        return f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"

    def stop_postgres(self) -> None:
        if self.pg_data is None or self.pg_bin is None:
            return
        pid_file = self.pg_data / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        subprocess.run(
            [*self.pg_user, str(self.pg_bin / "pg_ctl"), "-D", str(self.pg_data), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        if pid is not None:
            try:
                os.kill(pid, 0)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        say(f"stopped PostgreSQL (pid {pid})")
        self.pg_data = None

    # -- Redis (the Celery broker of `make e2e-scale`)

    def start_redis(self) -> str:
        """Debian's redis-server on 127.0.0.1 (no persistence), in the foreground; returns the broker URL."""
        server = shutil.which("redis-server")
        if server is None:
            apt_install(["redis-server"])
            server = shutil.which("redis-server")
        assert server is not None
        port = free_port()
        args = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
        self.start("redis", [*args, "--dir", str(self.workdir), "--protected-mode", "yes"], dict(os.environ))

        def pong() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        wait_for(pong, 30, "redis-server")
        return f"redis://127.0.0.1:{port}/0"

    # -- the emulator

    def start_emulator(self, seed: dict[str, Any], env: dict[str, str], *flags: str) -> str:
        """Start the emulator (``flags``: extra CLI options such as ``--latency-ms 20``); returns its URL."""
        seed_file = self.workdir / "seed.json"
        seed_file.write_text(json.dumps(seed))
        log = (self.logs / "emulator.log").open("ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelreg_emulator",
                "--port",
                "0",
                "--seed",
                str(seed_file),
                *flags,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.procs["emulator"] = proc
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        prefix = "modelreg-emulator listening on "
        if not line.startswith(prefix):
            raise RuntimeError(f"emulator did not start: {line!r}")
        say(f"started emulator (pid {proc.pid}) at {line[len(prefix) :]}")
        return line[len(prefix) :]


class Api:
    """The Airflow REST API (``/api/v2``) with a token from the simple auth manager."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)
        token = self.http.get("/auth/token").json()["access_token"]
        self.token = token
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"/api/v2{path}", params=params)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(f"/api/v2{path}", json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response.json()

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.patch(f"/api/v2{path}", json=body)
        response.raise_for_status()
        return response.json()

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")  # type: ignore[no-any-return]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}", deserialize=True)
        return entry["value"]

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns", order_by="id")["dag_runs"]  # type: ignore[no-any-return]

    def run_report(self, dag_id: str, run_id: str, tail: int = 40) -> str:
        """Every task's state and, for each one that did not succeed, the end of its log: what a failed check prints."""
        lines = [f"{dag_id} {run_id}:"]
        for ti in self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]:
            lines.append(f"  {ti['task_id']}: {ti['state']} (try {ti['try_number']})")
            if ti["state"] in ("success", "skipped", None) or not ti["try_number"]:
                continue
            path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
            try:
                content = self.get(path, full_content="true").get("content", [])
            except httpx.HTTPError as error:
                lines.append(f"    (no log: {error})")
                continue
            for entry in content[-tail:]:
                if isinstance(entry, dict):  # a structured record; the error's detail is the part worth reading
                    entry = json.dumps(entry) if "error_detail" in entry else entry.get("event", entry)
                lines.append(f"    | {entry}")
        return "\n".join(lines)
