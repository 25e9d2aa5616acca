"""What the watcher delivery tests share: waiting on a condition, and a watcher driven as Airflow 3.3's triggerer
drives it in ack mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class AckRun:
    """A watcher (``trigger``, an event trigger with a shared stream) driven as Airflow 3.3's triggerer drives it:
    Airflow's SharedStreamManager in ack mode; the test plays the supervisor and decides whether the stored-event
    confirmation arrives. ``events`` holds the announced version names, ``failure`` what ended the stream."""

    def __init__(self, trigger: Any, store: Any, *, confirm: bool, trigger_id: int = 1) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager

        self.manager = SharedStreamManager(ack_timeout=0.5)
        self.trigger = trigger
        self.trigger.asset_state_store = store
        self.key = self.trigger.shared_stream_key()
        assert self.key is not None
        self.trigger_id = trigger_id
        self.confirm = confirm
        self.events: list[str] = []
        self.failure: BaseException | None = None
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        stream = self.manager.subscribe(trigger_id=self.trigger_id, trigger=self.trigger, key=self.key)
        try:
            async for event in self.trigger.filter_shared_stream(stream):
                seq = self.manager.bind_pending_event(trigger_id=self.trigger_id, key=self.key)
                assert seq is not None  # ack mode: the event is bound to its observation
                self.events.append(event.payload["version"]["version_name"])
                if self.confirm:
                    self.manager.confirm_persisted([seq])
        except Exception as exc:
            self.failure = exc
        finally:
            await self.manager.unsubscribe(self.trigger_id, self.key)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.manager.stop_all()
