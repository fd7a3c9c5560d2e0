"""Every route is in the allow-table, and the table is enforced."""

import pytest

from api.main import create_api
from api.rbac import ALLOW, PUBLIC, app_routes


def _app_routes(runtime):
    return app_routes(create_api(runtime))


def test_every_route_is_in_the_allow_table(runtime):
    missing = _app_routes(runtime) - set(ALLOW)
    assert not missing, f"routes missing from api/rbac.py ALLOW: {sorted(missing)}"


def test_allow_table_has_no_stale_entries(runtime):
    stale = set(ALLOW) - _app_routes(runtime)
    assert not stale, f"ALLOW lists routes the app does not have: {sorted(stale)}"


def test_unlisted_route_is_refused(runtime, client, auth, monkeypatch):
    monkeypatch.delitem(ALLOW, ("GET", "/api/v1/sites"))
    r = client.get("/api/v1/sites", headers=auth("admin"))
    assert r.status_code == 500
    assert "not in the allow-table" in r.json()["detail"]


def _concrete(path: str) -> str:
    import re

    return re.sub(r"\{[^}]+\}", "999999", path)


@pytest.mark.parametrize("method,path", sorted(k for k, v in ALLOW.items() if v is not PUBLIC))
def test_protected_routes_need_a_token(client, method, path):
    r = client.request(method, _concrete(path), json={})
    assert r.status_code == 401, (method, path, r.status_code)


@pytest.mark.parametrize("method,path", sorted(k for k, v in ALLOW.items() if v is not PUBLIC))
def test_roles_outside_the_table_get_403(client, auth, method, path):
    roles = ALLOW[(method, path)]
    for role in ("admin", "noc", "technician", "provisioner", "viewer", "servicedesk"):
        if role in roles:
            continue
        r = client.request(method, _concrete(path), json={}, headers=auth(role))
        assert r.status_code == 403, (role, method, path, r.status_code)
        body = r.json()  # problem+json; the TMF Error shape (message) on /tmf-api/ routes
        assert role in (body["message"] if path.startswith("/tmf-api/") else body["detail"])


def test_bad_and_revoked_tokens(client, auth):
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    headers = auth("viewer")
    tokens = client.get("/api/v1/tokens", headers=headers).json()
    r = client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=headers)
    assert r.status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_route_enumeration_sees_included_routers(runtime):
    routes = _app_routes(runtime)
    assert ("GET", "/api/v1/devices") in routes and ("GET", "/docs") in routes
