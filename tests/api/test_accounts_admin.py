"""Admin control of users and tokens: disable / enable, role, password (API, audited), listing
and revoking any user's tokens; a token's children die with it."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from faultloop.accounts import service as accounts
from faultloop.accounts.models import ApiToken, User
from faultloop.audit.models import AuditEntry

PASSWORD = "correct horse battery"  # noqa: S105 - test password
NEW_PASSWORD = "a brand new passphrase"  # noqa: S105 - test password


def _alice(session, role="noc"):
    user = accounts.create_user(session, username="alice", role=role, password=PASSWORD, actor="test")
    _row, token = accounts.create_token(session, user=user, name="script", ttl_days=90, actor="test")
    _srow, session_token = accounts.create_token(
        session, user=user, name="dashboard session", ttl_days=0.5, actor="test", kind=accounts.SESSION
    )
    session.commit()
    return user, {"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {session_token}"}


def _audit(session, action):
    return session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()


def _live_tokens(session, user_id):
    return session.scalar(
        select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    )


def test_disable_revokes_every_token_and_enable_brings_none_back(client, auth, session):
    user, api, sess = _alice(session)
    admin = auth("admin")
    r = client.post("/api/v1/users/alice/disable", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"username": "alice", "tokens_revoked": 2}
    for headers in (api, sess):
        assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}).status_code == 401
    entry = _audit(session, "user.disable")[-1]
    assert (entry.actor, entry.after) == ("admin-user", {"username": "alice", "disabled": True})
    assert len(_audit(session, "token.revoke")) == 2
    assert client.post("/api/v1/users/alice/disable", headers=admin).json()["tokens_revoked"] == 0  # idempotent

    r = client.post("/api/v1/users/alice/enable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert client.get("/api/v1/me", headers=api).status_code == 401  # revoked stays revoked
    assert client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}).status_code == 201
    assert len(_audit(session, "user.enable")) == 1


def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(client, auth, session):
    admin = auth("admin")
    for method, path, body in [
        ("POST", "/api/v1/users/admin-user/disable", None),
        ("PUT", "/api/v1/users/admin-user/role", {"role": "viewer"}),
    ]:
        r = client.request(method, path, json=body, headers=admin)
        assert r.status_code == 409, r.text
        assert "last enabled admin" in r.json()["detail"]
    me = client.get("/api/v1/me", headers=admin).json()
    assert (me["role"], me["disabled"]) == ("admin", False)
    assert _audit(session, "user.disable") == [] and _audit(session, "user.role") == []
    # with a second admin, the first may step down
    accounts.create_user(session, username="root2", role="admin", password=None, actor="test")
    session.commit()
    assert client.put("/api/v1/users/admin-user/role", json={"role": "noc"}, headers=admin).status_code == 200


def test_role_change_holds_at_once_for_existing_tokens_and_is_audited(client, auth, session):
    _user, api, _sess = _alice(session, role="noc")
    admin = auth("admin")
    assert client.post("/api/v1/sites", json={"name": "s1"}, headers=api).status_code == 201
    r = client.put("/api/v1/users/alice/role", json={"role": "viewer"}, headers=admin)
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    assert client.post("/api/v1/sites", json={"name": "s2"}, headers=api).status_code == 403
    entry = _audit(session, "user.role")[-1]
    assert (entry.before["role"], entry.after["role"]) == ("noc", "viewer")


def test_bad_role_and_password_and_unknown_user_change_nothing(client, auth, session):
    user, _api, _sess = _alice(session)
    admin = auth("admin")
    hash_before = user.password_hash
    r = client.put("/api/v1/users/alice/role", json={"role": "wizard"}, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "role"
    r = client.put("/api/v1/users/alice/password", json={"password": "short"}, headers=admin)
    assert r.status_code == 422 and "password: expected at least 10 characters" in r.json()["detail"]
    r = client.put("/api/v1/users/alice/password", json={"password": "x" * 1025}, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "password"
    r = client.put("/api/v1/users/alice/password", json={}, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "password"
    for method, path, body in [
        ("POST", "/api/v1/users/nobody/disable", None),
        ("PUT", "/api/v1/users/nobody/role", {"role": "noc"}),
        ("PUT", "/api/v1/users/nobody/password", {"password": NEW_PASSWORD}),
        ("GET", "/api/v1/users/nobody/tokens", None),
        ("DELETE", "/api/v1/users/nobody/tokens", None),
    ]:
        r = client.request(method, path, json=body, headers=admin)
        assert r.status_code == 404 and "user 'nobody' not found" in r.json()["detail"], (method, path)
    session.expire_all()
    alice = session.get(User, user.id)
    assert (alice.role.value, alice.password_hash, alice.disabled) == ("noc", hash_before, False)
    assert _live_tokens(session, user.id) == 2
    assert [e.action for e in _audit(session, "user.role") + _audit(session, "user.password")] == []


def test_password_change_revokes_sessions_keeps_api_tokens_and_never_logs_the_password(client, auth, session):
    user, api, sess = _alice(session)
    r = client.put("/api/v1/users/alice/password", json={"password": NEW_PASSWORD}, headers=auth("admin"))
    assert r.status_code == 200 and r.json() == {"username": "alice", "tokens_revoked": 1}
    assert client.get("/api/v1/me", headers=sess).status_code == 401
    assert client.get("/api/v1/me", headers=api).status_code == 200
    assert client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "alice", "password": NEW_PASSWORD}).status_code == 201
    entry = _audit(session, "user.password")[-1]
    assert entry.after == {"username": "alice", "password_set": True}
    dumped = json.dumps([[e.before, e.after] for e in session.scalars(select(AuditEntry))])
    assert NEW_PASSWORD not in dumped and PASSWORD not in dumped


def test_an_admin_lists_and_revokes_any_users_tokens(client, auth, session):
    user, api, sess = _alice(session)
    admin = auth("admin")
    listed = client.get("/api/v1/users/alice/tokens", headers=admin).json()
    assert [(t["name"], t["kind"], t["revoked_at"]) for t in listed] == [
        ("script", "api", None),
        ("dashboard session", "session", None),
    ]
    assert "token_hash" not in listed[0] and "token" not in listed[0]
    assert client.delete(f"/api/v1/tokens/{listed[0]['id']}", headers=admin).status_code == 204
    assert client.get("/api/v1/me", headers=api).status_code == 401
    r = client.delete("/api/v1/users/alice/tokens", headers=admin)
    assert r.status_code == 200 and r.json()["tokens_revoked"] == 1
    assert client.get("/api/v1/me", headers=sess).status_code == 401
    assert _live_tokens(session, user.id) == 0
    # a user sees only their own tokens, and may not revoke another's
    viewer = auth("viewer")
    assert client.get("/api/v1/users/alice/tokens", headers=viewer).status_code == 403
    assert client.delete(f"/api/v1/tokens/{listed[1]['id']}", headers=viewer).status_code == 403


def test_revoking_a_token_revokes_the_tokens_it_made(client, session):
    _user, api, _sess = _alice(session)
    child = client.post("/api/v1/tokens", json={"name": "child"}, headers=api).json()
    grandchild = client.post(
        "/api/v1/tokens", json={"name": "grandchild"}, headers={"Authorization": f"Bearer {child['token']}"}
    ).json()
    rows = {t["name"]: t for t in client.get("/api/v1/tokens", headers=api).json()}
    assert rows["grandchild"]["created_by_token_id"] == child["id"]
    assert client.delete(f"/api/v1/tokens/{rows['script']['id']}", headers=api).status_code == 204
    for token in (child["token"], grandchild["token"]):
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    reasons = [e.after["reason"] for e in _audit(session, "token.revoke")]
    assert reasons == ["revoked", f"made by token {rows['script']['id']}", f"made by token {rows['script']['id']}"]


def test_a_username_with_a_trailing_newline_is_refused(session):
    """`$` matches before a trailing newline: the whole name must match, not its first line."""
    import pytest

    from faultloop.errors import InvalidInput

    for name in ("alice\n", "alice\nbob", "\nalice"):
        with pytest.raises(InvalidInput, match="username: expected 1-64 characters"):
            accounts.create_user(session, username=name, role="noc", password=None, actor="test")
    assert session.scalar(select(func.count()).select_from(User).where(User.username.like("%alice%"))) == 0
