def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_reports_database_and_migrations(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"database": "ok", "migrations": "ok"}


def test_devices_need_a_token(client):
    r = client.get("/api/v1/devices")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "bearer token" in r.json()["detail"]


def test_devices_list_with_token(client, auth):
    r = client.get("/api/v1/devices", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
