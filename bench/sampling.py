"""Where a benchmark's CPU goes, by concern: py-spy samples this process's stacks from outside (``make bench``
installs it with the ``bench`` extra), and each sample is charged to the concern of its innermost frame that belongs
to one (a socket write inside h11 is "sockets"). cProfile, the other view (the P6 records' profiles), charges every
Python call its hook and so inflates small pure-Python functions several times over; an in-process sampling thread
only gets the GIL when the loop's thread releases it, in socket calls, and so over-counts those. py-spy has neither
bias. Idle samples (the loop waiting in ``select``, an idle pool thread) are not counted.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: concern -> path fragments of its code (first match from the innermost frame outwards)
CONCERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("signing", ("airflow_provider_modelreg/auth.py", "/hmac.py", "/hashlib.py")),
    ("parsing", ("/pydantic", "airflow_provider_modelreg/models", "transport/responses.py", "/json/")),
    ("decision core", ("airflow_provider_modelreg/approval", "airflow_provider_modelreg/alias.py")),
    ("hub", ("triggers/hub.py",)),
    ("our triggers", ("airflow_provider_modelreg/triggers/",)),
    ("URL and request building", ("httpx/_urls.py", "httpx/_urlparse.py", "httpx/_models.py", "/urllib/parse.py")),
    ("our transport (retry plan, body cap)", ("airflow_provider_modelreg/transport/",)),
    ("httpcore pool", ("httpcore/_async/connection_pool.py", "httpcore/_async/connection.py")),
    ("HTTP/1.1 (httpcore, h11)", ("httpcore/_async/http11.py", "/h11/")),
    ("sockets (anyio, asyncio transports)", ("/anyio/", "httpcore/_backends", "asyncio/selector_events.py")),
    ("logging", ("/logging/", "/structlog/")),
    ("Airflow trigger machinery", ("/airflow/",)),
    ("the anchor (aiohttp, HTTP provider)", ("/aiohttp/", "/providers/http/", "/yarl/", "/multidict/")),
    ("asyncio (tasks, futures, timers)", ("/asyncio/",)),
)


def concern(frames: list[str]) -> str | None:
    """The concern of a stack, innermost frame last (py-spy's ``Class.name (path:line)`` strings, the path relative
    to ``site-packages`` or the standard library); None: idle."""
    if not frames:
        return None
    leaf_name, _, leaf_path = frames[-1].rpartition(" (")
    leaf_name = leaf_name.rsplit(".", 1)[-1]
    if leaf_path.startswith("selectors.py") and leaf_name in {"select", "poll"}:
        return None  # the loop waiting for I/O
    if leaf_path.startswith("concurrent/futures/thread.py") and leaf_name == "_worker":
        return None  # an idle pool thread
    for frame in reversed(frames):
        path = "/" + frame.rpartition(" (")[2]
        for name, parts in CONCERNS:
            if any(part in path for part in parts):
                return name
    return "other"


class Sampler:
    """py-spy on this process while the block runs (``with Sampler() as s: ...``); :meth:`shares` afterwards.
    Without py-spy on the PATH of this interpreter's environment it records nothing (``shares`` says so)."""

    def __init__(self, rate: int = 100) -> None:
        self.rate = rate
        self.counts: Counter[str] = Counter()
        self.error: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        handle, name = tempfile.mkstemp(prefix="bench-pyspy-", suffix=".txt")
        os.close(handle)
        self._out = Path(name)

    def __enter__(self) -> Sampler:
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if exe is None:
            self.error = "py-spy not installed (pip install -e '.[bench]')"
            return self
        self._proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(os.getpid()),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--output",
                str(self._out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)  # attached before the measured work starts (the caller lets its loop catch up after)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGINT)
        try:
            _, err = self._proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            err = b"py-spy did not stop"
        if self._proc.returncode not in (0, -signal.SIGINT) and not self._out.stat().st_size:
            self.error = f"py-spy failed: {err.decode(errors='replace').strip()[-200:]}"
        for line in self._out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():  # a frame's text broken over lines (a newline in a name py-spy read): no count
                continue
            name = concern(stack.split(";"))
            if name is not None:
                self.counts[name] += int(count)
        self._out.unlink(missing_ok=True)

    def shares(self) -> dict[str, Any]:
        """Share of the busy samples per concern, largest first, plus ``samples`` (and ``error`` if none)."""
        total = sum(self.counts.values())
        out: dict[str, Any] = {name: count / total for name, count in self.counts.most_common()} if total else {}
        out["samples"] = float(total)
        if self.error:
            out["error"] = self.error
        return out


def render_shares(shares: dict[str, Any]) -> str:
    """``"HTTP/1.1 41%, sockets 20%, ..."`` (shares under 2% grouped)."""
    if shares.get("error"):
        return f"not sampled: {shares['error']}"
    items = [(n, v) for n, v in shares.items() if n not in {"samples", "error"}]
    parts = [f"{name} {share:.0%}" for name, share in items if share >= 0.02]
    rest = sum(share for _, share in items if share < 0.02)
    if rest:
        parts.append(f"the rest {rest:.0%}")
    return ", ".join(parts) + f" ({shares.get('samples', 0):.0f} samples)"


if __name__ == "__main__":  # a look at itself: busy Python is "other"
    with Sampler() as sampler:
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:
            pass
    print(sampler.shares())


async def measured_window(
    lag: Any, polls: Callable[[], int], waits: int, seconds: float, rounds: float
) -> dict[str, Any]:
    """The measured window of a triggerer shape (P3, P6): ``seconds`` of the running waits, sampled by py-spy, with
    the loop lag (``lag``, a started :class:`bench.common.LoopLag`) reset at its start. ``polls`` counts the waits'
    polls so far; ``rounds`` is how many rounds the window should hold when the waits keep up.

    Returns ``rounds`` (held), ``cpu_s_per_round``, ``round_s``, ``rounds_kept_up`` (1.0 when at least 95% of
    ``rounds`` were held), the lag's figures and ``shares`` (py-spy's split by concern).
    """
    result: dict[str, Any] = {}
    # py-spy attaches (blocking this thread a moment) and the loop catches up before the window opens; every
    # figure is read before it detaches, so neither shows in the window
    with Sampler() as sampler:
        await asyncio.sleep(1.0)
        lag.reset()
        polls0, cpu0, wall0 = polls(), time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        held = (polls() - polls0) / waits
        result["rounds"] = held
        result["cpu_s_per_round"] = (time.process_time() - cpu0) / max(held, 1e-9)
        result["round_s"] = (time.perf_counter() - wall0) / max(held, 1e-9)
        result["rounds_kept_up"] = float(held >= rounds * 0.95)
        result.update(lag.figures())
    result["shares"] = sampler.shares()
    return result
