"""Dashboard login, sessions, CSRF and security headers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.deps import SESSION_COOKIE
from api.main import create_api
from faultloop.accounts import service as accounts
from tests.web.conftest import PASSWORD, csrf_of


def _user(session, name="alice", role="noc"):
    accounts.create_user(session, username=name, role=role, password=PASSWORD, actor="test")
    session.commit()


def test_login_sets_an_httponly_strict_cookie_and_redirects(runtime, session):
    _user(session)
    with TestClient(create_api(runtime)) as c:
        r = c.post("/login", data={"username": "alice", "password": PASSWORD}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=flt_")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie
        # the session works on the JSON API as well
        assert c.get("/api/v1/me").json()["username"] == "alice"


def test_secure_cookie_when_configured(runtime, session):
    _user(session)
    runtime.settings.session_cookie_secure = True
    with TestClient(create_api(runtime)) as c:
        r = c.post("/login", data={"username": "alice", "password": PASSWORD}, follow_redirects=False)
        assert "Secure" in r.headers["set-cookie"]


def test_technician_lands_on_my_tickets(runtime, session):
    _user(session, "tom", "technician")
    with TestClient(create_api(runtime)) as c:
        r = c.post("/login", data={"username": "tom", "password": PASSWORD}, follow_redirects=False)
        assert r.headers["location"] == "/ui/my/tickets"


def test_wrong_password_renders_the_form_with_an_error_and_no_cookie(runtime, session):
    _user(session)
    with TestClient(create_api(runtime)) as c:
        r = c.post("/login", data={"username": "alice", "password": "wrong-password"}, follow_redirects=False)
        assert r.status_code == 401
        assert "invalid username or password" in r.text
        assert "wrong-password" not in r.text
        assert "set-cookie" not in r.headers
        r = c.post("/login", data={"username": "nobody", "password": "wrong-password"}, follow_redirects=False)
        assert r.status_code == 401 and "invalid username or password" in r.text


def test_login_form_fields_are_validated(runtime):
    with TestClient(create_api(runtime)) as c:
        r = c.post("/login", data={"username": "alice"}, headers={"accept": "text/html"}, follow_redirects=False)
        assert r.status_code == 422 and "password" in r.text
        r = c.post("/login", data={"username": "a" * 65, "password": "x"}, follow_redirects=False)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "username"


def test_next_is_followed_only_for_local_paths(runtime, session):
    _user(session)
    with TestClient(create_api(runtime)) as c:
        for target, expected in [
            ("/ui/devices", "/ui/devices"),
            ("https://evil.example/", "/"),
            ("//evil.example/x", "/"),
            ("/\\evil.example", "/"),
        ]:
            r = c.post(
                "/login",
                data={"username": "alice", "password": PASSWORD, "next": target},
                follow_redirects=False,
            )
            assert r.headers["location"] == expected, target


def test_cross_origin_login_is_refused(runtime, session):
    _user(session)
    with TestClient(create_api(runtime)) as c:
        r = c.post(
            "/login",
            data={"username": "alice", "password": PASSWORD},
            headers={"origin": "https://evil.example"},
            follow_redirects=False,
        )
        assert r.status_code == 403 and "another origin" in r.json()["detail"]
        assert "set-cookie" not in r.headers


def test_pages_redirect_to_login_without_a_session(client):
    r = client.get("/ui/devices", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/ui/devices"
    r = client.get("/ui/devices", headers={"hx-request": "true"}, follow_redirects=False)
    assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/login")
    # API clients still get problem+json
    assert client.get("/api/v1/me").status_code == 401


def test_unsafe_requests_with_the_cookie_need_the_csrf_token(web):
    c = web("noc")
    token = c.headers.pop("X-CSRF-Token")
    r = c.post("/api/v1/sites", json={"name": "csrf-site"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = c.post("/api/v1/sites", json={"name": "csrf-site"}, headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403
    assert "csrf-site" not in [s["name"] for s in c.get("/api/v1/sites").json()]
    r = c.post("/api/v1/sites", json={"name": "csrf-site"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 201, r.text


def test_bearer_clients_need_no_csrf_token(client, auth):
    assert client.post("/api/v1/sites", json={"name": "bearer-site"}, headers=auth("noc")).status_code == 201


def test_logout_revokes_the_session(web):
    c = web("viewer")
    cookie = c.cookies.get(SESSION_COOKIE)
    r = c.post("/logout", headers={"hx-request": "true"})
    assert r.status_code == 204 and r.headers["hx-redirect"] == "/login"
    c.cookies.set(SESSION_COOKIE, cookie)
    assert c.get("/api/v1/me", headers={"accept": "application/json"}).status_code == 401


def test_logout_needs_the_csrf_token(web):
    c = web("viewer")
    c.headers.pop("X-CSRF-Token")
    assert c.post("/logout").status_code == 403
    assert c.get("/api/v1/me", headers={"accept": "application/json"}).status_code == 200


def test_security_headers_on_pages_and_api(client):
    for path in ("/login", "/healthz", "/static/css/app.css"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"


def test_pages_carry_no_inline_script_or_style(client):
    html = client.get("/login").text
    assert "<script>" not in html and " style=" not in html and " onclick" not in html
    assert 'src="/static/htmx.min.js"' in html


def test_a_page_carries_the_sessions_csrf_token(runtime, session):
    _user(session)
    with TestClient(create_api(runtime)) as c:
        c.post("/login", data={"username": "alice", "password": PASSWORD})
        token = csrf_of(c.get("/").text)
        from api.deps import csrf_for

        assert token == csrf_for(c.cookies.get(SESSION_COOKIE))


def test_html_error_page_for_a_forbidden_page(web):
    c = web("technician")
    r = c.get("/ui/tickets")
    assert r.status_code == 403 and "<html" in r.text and "technician" in r.text


# ---- a session is not a token factory; logout revokes what the session made -------------------------


def test_a_session_may_not_create_api_tokens(web, session):
    from sqlalchemy import func, select

    from faultloop.accounts.models import ApiToken

    c = web("noc")
    before = session.scalar(select(func.count()).select_from(ApiToken))
    r = c.post("/api/v1/tokens", json={"name": "long-lived"}, headers={"accept": "application/json"})
    assert r.status_code == 403, r.text
    assert "a dashboard session may not create API tokens" in r.json()["detail"]
    # the session token copied into a bearer header is still a session
    bearer = {"Authorization": f"Bearer {c.cookies.get(SESSION_COOKIE)}", "accept": "application/json"}
    c.cookies.clear()
    r = c.post("/api/v1/tokens", json={"name": "long-lived"}, headers=bearer)
    assert r.status_code == 403
    assert session.scalar(select(func.count()).select_from(ApiToken)) == before
    kinds = [t["kind"] for t in c.get("/api/v1/tokens", headers=bearer).json()]
    assert kinds == ["session"]


def test_logout_revokes_the_session_and_what_it_made(web, session, runtime):
    from sqlalchemy import select

    from faultloop.accounts.models import ApiToken, User

    c = web("viewer")
    cookie = c.cookies.get(SESSION_COOKIE)
    credential = accounts.resolve_token(session, cookie)
    # a token a session made before sessions were refused (or by any path that records its maker)
    user = session.get(User, credential.user.id)
    made, made_token = accounts.create_token(
        session,
        user=user,
        name="made by the session",
        ttl_days=90,
        actor="test",
        created_by=accounts.Credential(user=user, token_id=credential.token_id, kind="api"),
    )
    session.commit()
    assert c.post("/logout", headers={"hx-request": "true"}).status_code == 204
    session.expire_all()
    assert session.get(ApiToken, made.id).revoked_at is not None
    c.cookies.clear()
    r = c.get("/api/v1/me", headers={"Authorization": f"Bearer {made_token}", "accept": "application/json"})
    assert r.status_code == 401
    live = session.scalars(
        select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    assert live == []
