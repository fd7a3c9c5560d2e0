"""Helpers shared by tests of several packages."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class BackgroundLoop:
    """An asyncio loop in a thread: servers (the lab's SSH CLIs) run there while netmiko blocks here."""

    def __init__(self, timeout: float = 15) -> None:
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout or self.timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
