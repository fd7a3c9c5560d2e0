"""Helpers shared by tests of several packages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
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


class Hook:
    """A real HTTP server on a random 127.x address, for webhook-shaped receivers (a plain webhook,
    Slack/Mattermost, Teams workflows, PagerDuty Events API v2). It records every request and answers
    with the queued ``replies`` (status, JSON body) or the queued ``statuses``, else ``default``."""

    def __init__(self, default: tuple[int, Any] = (200, None)) -> None:
        import random
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        self.replies: list[tuple[int, Any]] = []
        self.default = default
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                hook.paths.append(self.path)
                if hook.replies:
                    status, answer = hook.replies.pop(0)
                elif hook.statuses:
                    status, answer = hook.statuses.pop(0), None
                else:
                    status, answer = hook.default
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                if answer is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((f"127.{random.randint(40, 60)}.{random.randint(0, 250)}.9", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def bodies(self) -> list[Any]:
        return [json.loads(body) for _headers, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd handler keeping every message: (mail from, recipients, raw content)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def start_smtp(handler: Any, host: str = "127.0.0.1", **options: Any) -> Any:
    """A real aiosmtpd server for ``handler`` on a free port of ``host`` (its Controller, started)."""
    import random

    from aiosmtpd.controller import Controller

    for _ in range(20):
        controller = Controller(handler, hostname=host, port=random.randint(20000, 60000), **options)
        try:
            controller.start()
            return controller
        except Exception:
            continue
    raise RuntimeError("no free port for the SMTP server")


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, str, int]]:
    """A real SMTP server (aiosmtpd) on a random 127.x address: (mailbox, host, port)."""
    import random

    box = Mailbox()
    controller = start_smtp(box, f"127.{random.randint(40, 60)}.{random.randint(0, 250)}.25")
    try:
        yield box, controller.hostname, controller.port
    finally:
        controller.stop()
