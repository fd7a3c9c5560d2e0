from tests.collectors import cli_lab

file_runtime = cli_lab.file_runtime  # a runtime on its own SQLite file, with real commits


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "role": "all"}


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


def test_a_failed_commit_is_the_clients_error_not_a_2xx(runtime, auth, monkeypatch):
    """The request's transaction commits before the response goes out (FastAPI's default
    would send the 201 first). Over real HTTP: a test client would wait for the app anyway."""
    import threading
    import time

    import httpx
    import uvicorn
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from api.main import create_api

    headers = auth("noc")
    real = runtime.sessions

    def failing_sessions():
        """Sessions whose commit fails once something was written."""
        session = real()
        original = session.commit
        event.listen(session, "after_flush", lambda s, _ctx: s.info.__setitem__("wrote", True))

        def commit():
            if session.info.get("wrote"):
                raise OperationalError("COMMIT", {}, Exception("disk I/O error"))
            original()

        session.commit = commit
        return session

    server = uvicorn.Server(uvicorn.Config(create_api(runtime), host="127.0.0.1", port=0, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        monkeypatch.setattr(runtime, "sessions", failing_sessions)
        r = httpx.post(f"{url}/api/v1/sites", json={"name": "never-committed"}, headers=headers, timeout=10)
        assert r.status_code == 500, r.status_code
        monkeypatch.setattr(runtime, "sessions", real)
        names = [s["name"] for s in httpx.get(f"{url}/api/v1/sites", headers=headers, timeout=10).json()]
        assert "never-committed" not in names
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_locked_sqlite_database_is_a_503_to_retry_and_nothing_is_written(file_runtime):
    """Another writer holds SQLite's write lock: the client gets a clear 503 with
    Retry-After (not a 500), the request's writes are rolled back, and a retry succeeds."""
    import sqlite3

    from fastapi.testclient import TestClient

    from api.main import create_api
    from tests.conftest import make_token

    rt = file_runtime
    with rt.sessions() as session:
        headers = {"Authorization": f"Bearer {make_token(session, 'op', 'admin')}"}
    other = sqlite3.connect(str(rt.engine.url.database), isolation_level=None)
    try:
        with TestClient(create_api(rt)) as client:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock throughout
            r = client.post("/api/v1/sites", json={"name": "pop-1"}, headers=headers)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1" and r.json()["title"] == "Database busy"
            assert "rolled back, retry" in r.json()["detail"]
            other.execute("ROLLBACK")
            assert client.get("/api/v1/sites", headers=headers).json() == []
            assert client.post("/api/v1/sites", json={"name": "pop-1"}, headers=headers).status_code == 201
    finally:
        other.close()
