"""A marker secret never appears in the database file, the logs or any API response."""

import logging
from pathlib import Path

from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from api.main import create_api
from faultloop import migrate
from faultloop.accounts import service as accounts
from faultloop.cmd.app import build_runtime
from faultloop.db import transaction
from faultloop.settings import Settings

MARKERS = {
    "community": "MARKER-community-7f3a",
    "auth": "MARKER-authkey-91bc",
    "priv": "MARKER-privkey-22de",
    "ssh": "MARKER-sshpass-5e10",
    "key": "MARKER-sshkey-0a0a",
}


def _all_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.glob("faultloop.db*"))


def test_marker_secrets_never_leak(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    settings = Settings(data_dir=tmp_path / "var", secret_key=Fernet.generate_key().decode(), log_level="DEBUG")
    rt = build_runtime(settings)
    migrate.upgrade(rt.engine)
    with transaction(rt.sessions) as s:
        user = accounts.create_user(s, username="admin", role="admin", password=None, actor="t")
        _row, token = accounts.create_token(s, user=user, name="t", ttl_days=1, actor="t")
    h = {"Authorization": f"Bearer {token}"}
    responses = []
    with TestClient(create_api(rt), raise_server_exceptions=False) as client:
        r = client.post(
            "/api/v1/devices",
            headers=h,
            json={
                "hostname": "r1",
                "address": "127.0.1.1",
                "role": "core",
                "snmp": {"version": "v2c", "community": MARKERS["community"]},
                "ssh": {"username": "ops", "password": MARKERS["ssh"], "private_key": MARKERS["key"]},
            },
        )
        assert r.status_code == 201
        responses.append(r)
        r = client.post(
            "/api/v1/devices",
            headers=h,
            json={
                "hostname": "r2",
                "address": "127.0.1.2",
                "role": "core",
                "snmp": {
                    "version": "v3",
                    "user": "u",
                    "auth_protocol": "SHA-256",
                    "auth_key": MARKERS["auth"],
                    "priv_protocol": "AES-128",
                    "priv_key": MARKERS["priv"],
                },
            },
        )
        assert r.status_code == 201
        responses.append(r)
        # bad inputs carrying secrets: the error must not echo them
        responses.append(
            client.post(
                "/api/v1/devices",
                headers=h,
                json={
                    "hostname": "r3",
                    "address": "bad",
                    "role": "core",
                    "snmp": {"version": "v2c", "community": MARKERS["community"]},
                },
            )
        )
        responses.append(
            client.post(
                "/api/v1/devices",
                headers=h,
                json={
                    "hostname": "r1",
                    "address": "127.0.0.9",
                    "role": "core",
                    "ssh": {"username": "ops", "password": MARKERS["ssh"]},
                },
            )
        )
        responses.append(
            client.post(
                "/api/v1/devices",
                headers=h,
                json={
                    "hostname": "r4",
                    "address": "127.0.0.4",
                    "role": "core",
                    "snmp": {"version": "v3", "user": "u", "auth_protocol": "MD5", "auth_key": MARKERS["auth"]},
                },
            )
        )
        responses.append(
            client.patch(
                "/api/v1/devices/2",
                headers=h,
                json={"snmp": {"version": "v1", "community": MARKERS["community"], "user": "x"}},
            )
        )
        for path in (
            "/api/v1/devices",
            "/api/v1/devices/1",
            "/api/v1/devices/2",
            "/api/v1/audit",
            "/openapi.json",
            "/api/v1/devices/1/interfaces",
        ):
            responses.append(client.get(path, headers=h))
    assert [r.status_code for r in responses[2:6]] == [422, 409, 422, 422]
    rt.engine.dispose()
    stored = _all_bytes(settings.data_dir)
    logs = caplog.text
    for marker in MARKERS.values():
        assert marker.encode() not in stored, f"{marker} found in the database file"
        assert marker not in logs, f"{marker} found in the logs"
        for r in responses:
            assert marker not in r.text, f"{marker} in response to {r.request.method} {r.request.url}"
    # and the secrets are really stored, encrypted
    rt2 = build_runtime(settings)
    with transaction(rt2.sessions) as s:
        from inventory import service

        r1 = service.device_by_hostname(s, "r1")
        assert rt2.vault.decrypt(r1.snmp_community_enc) == MARKERS["community"]
