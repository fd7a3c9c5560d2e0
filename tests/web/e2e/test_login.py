"""Log in and out through the real form in chromium, against the running demo."""

from __future__ import annotations

from collections.abc import Callable

from .conftest import Watched
from .server import Demo


def test_login_form_then_logout(open_page: Callable[..., Watched], demo: Demo) -> None:
    w = open_page(username=None)
    response = w.goto("/login")
    assert response.headers.get("x-frame-options") == "DENY"
    w.shot("login")
    page = w.page
    # a wrong password: the form says so and no session cookie is set
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_test_id("login-error").wait_for()
    assert "faultloop_session" not in {c["name"] for c in page.context.cookies()}
    w.shot("login-error")
    # the right one: the console (landing page) with the user's name in the top bar
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(demo.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(demo.base + "/")
    cookie = next(c for c in page.context.cookies() if c["name"] == "faultloop_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.locator(".who .username").inner_text() == "admin"
    w.assert_clean()
    # log out: back to the form, and the old session no longer opens a page
    page.get_by_test_id("logout").click()
    page.wait_for_url(lambda url: "/login" in url)
    page.goto(demo.base + "/ui/devices")
    assert "/login" in page.url
    w.assert_clean()


def test_a_page_asked_for_before_login_comes_back_after_it(open_page: Callable[..., Watched], demo: Demo) -> None:
    w = open_page(username=None)
    w.page.goto(demo.base + "/ui/topology")
    assert "/login" in w.page.url and "next=" in w.page.url
    w.page.get_by_label("Username").fill("admin")
    w.page.get_by_label("Password").fill(demo.password)
    with w.page.expect_response(lambda r: r.request.method == "POST") as posted:
        w.page.get_by_role("button", name="Log in").click()
    # The redirect names the page asked for. (Following it in the browser races the login's
    # commit: api/deps.py's session dependency commits after the response is sent, so the
    # browser's next request can arrive before the session token exists; see the report.)
    assert posted.value.status == 303
    assert posted.value.headers["location"] == "/ui/topology"
    w.assert_clean()
