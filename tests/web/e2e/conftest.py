"""Browser end-to-end fixtures: one real `faultloop demo` (service + lab network) and one
headless Debian chromium for this package, a fresh browser context per test. Package, not
session, scope: the sync Playwright driver runs an event loop in this thread while it is
open, and async tests collected after this package could not start their own.

Screenshots (full page) go to ``$FAULTLOOP_TEST_ARTIFACTS/screenshots`` (default
``var/test-artifacts/screenshots`` in the checkout). Chromium is a test dependency
(scripts/test-deps.sh installs it): without it these tests fail, they never skip.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Response, sync_playwright

from .server import REPO, Demo, scratch_postgres, start_demo

CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile);
});
"""

# every hostile string the XSS battery plants; each must come back as text, never as markup
XSS_PAYLOADS = (
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=1">',
    '<svg onload="window.__xss=1">',
    "javascript:window.__xss=1",
)


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory, screenshots: Path) -> Iterator[Demo]:
    """The demo on SQLite in a temporary data dir; on a scratch PostgreSQL database instead
    when FAULTLOOP_TEST_DATABASE_URL names a server (as in CI)."""
    workdir = tmp_path_factory.mktemp("e2e-demo")
    with ExitStack() as stack:
        pg = os.environ.get("FAULTLOOP_TEST_DATABASE_URL", "")
        url = stack.enter_context(scratch_postgres(pg, "faultloop_e2e")) if pg else ""
        server = start_demo(workdir, database_url=url)
        try:
            yield server
        finally:
            rc = server.stop()
            # the service's log beside the screenshots, for whoever reads a failure
            shutil.copyfile(workdir / "demo.log", screenshots.parent / "e2e-demo.log")
            assert rc == 0, server.output[-4000:]


@pytest.fixture(scope="package")
def screenshots() -> Path:
    root = Path(os.environ.get("FAULTLOOP_TEST_ARTIFACTS") or REPO / "var" / "test-artifacts")
    path = root / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run scripts/test-deps.sh (Debian package 'chromium')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@dataclass
class Watched:
    """A page and what it did: dialogs, console messages, CSP violations, uncaught errors."""

    page: Page
    base: str
    shots: Path
    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Response:
        response = self.page.goto(self.base + path, wait_until="load")
        assert response is not None, path
        assert response.status == 200, f"{path}: HTTP {response.status}"
        csp = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "object-src 'none'" in csp, f"{path}: CSP header missing: {csp!r}"
        return response

    def shot(self, name: str) -> Path:
        path = self.shots / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def csp_violations(self) -> list[str]:
        recorded = self.page.evaluate("window.__cspViolations || []")
        from_console = [m for m in self.console if "Content Security Policy" in m or "Content-Security-Policy" in m]
        return [*recorded, *from_console]

    def assert_clean(self) -> None:
        """The app's own pages obey their CSP, raise no dialog and throw no script error."""
        assert self.dialogs == [], f"dialogs fired: {self.dialogs}"
        assert self.csp_violations() == [], f"CSP violations: {self.csp_violations()}"
        assert self.errors == [], f"uncaught page errors: {self.errors}"

    def assert_inert(self) -> None:
        """Nothing a hostile string carried ran or became markup."""
        page = self.page
        self.assert_clean()
        assert page.evaluate("typeof window.__xss") == "undefined", "an injected script ran"
        assert page.locator("img[src=x]").count() == 0, "an injected <img> is in the page"
        assert page.locator("svg[onload]").count() == 0, "an injected <svg onload> is in the page"
        assert page.locator("script:not([src])").count() == 0, "an inline <script> is in the page"
        handlers = page.evaluate(
            """() => [...document.querySelectorAll('*')].flatMap(el =>
                 [...el.attributes].filter(a => a.name.toLowerCase().startsWith('on'))
                   .map(a => el.tagName + ' ' + a.name))"""
        )
        assert handlers == [], f"elements with on* handler attributes: {handlers}"
        links = page.evaluate(
            """() => [...document.querySelectorAll('[href],[src],[action],[formaction],[xlink\\\\:href]')]
                 .map(el => el.getAttribute('href') || el.getAttribute('src') || el.getAttribute('action')
                            || el.getAttribute('formaction') || el.getAttribute('xlink:href') || '')
                 .filter(v => v.trim().toLowerCase().startsWith('javascript:'))"""
        )
        assert links == [], f"javascript: URLs in link positions: {links}"


@pytest.fixture(scope="package")
def sessions() -> dict[str, Any]:
    """username -> the browser storage state (session cookie) after one form login."""
    return {}


@pytest.fixture
def open_page(
    browser: Browser, demo: Demo, screenshots: Path, sessions: dict[str, Any]
) -> Iterator[Callable[..., Watched]]:
    """open_page(username="admin", password=None, viewport=None, fresh=False) -> a Watched
    page in a fresh context, logged in as that user. The first page of each user logs in
    through the /login form and later pages reuse that session's cookie (fresh=True logs
    in again, for a test that logs out); username=None: not logged in."""
    contexts: list[Any] = []

    def make(
        username: str | None = "admin",
        password: str | None = None,
        viewport: dict[str, int] | None = None,
        fresh: bool = False,
    ) -> Watched:
        state = sessions.get(username) if username and not fresh else None
        ctx = browser.new_context(viewport=viewport or {"width": 1440, "height": 900}, storage_state=state)
        contexts.append(ctx)
        ctx.add_init_script(CSP_RECORDER)
        watched = Watched(page=ctx.new_page(), base=demo.base, shots=screenshots)
        page = watched.page

        def on_dialog(dialog: Dialog) -> None:
            watched.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        def on_console(msg: ConsoleMessage) -> None:
            watched.console.append(f"{msg.type}: {msg.text}")

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
        if username is not None and state is None:
            login(watched, username, password or demo.password)
            if not fresh:
                sessions[username] = ctx.storage_state()
        return watched

    yield make
    for ctx in contexts:
        ctx.close()


def login(watched: Watched, username: str, password: str) -> None:
    page = watched.page
    watched.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as posted:
        page.get_by_role("button", name="Log in").click()
    status = posted.value.status
    assert status == 303, f"login of {username!r} answered HTTP {status}, not a redirect (see e2e-demo.log)"
    page.wait_for_url(lambda url: "/login" not in url, timeout=10_000)
    page.wait_for_load_state("load")


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (returned) or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.1)


def active_alarms(demo: Demo, device: str, managed_object: str) -> list[dict[str, Any]]:
    items = demo.ok("GET", "/api/v1/alarms", params={"state": "active", "device": device, "limit": 100})["items"]
    return [a for a in items if managed_object in a["managed_object"]]
