"""Sites, devices, interfaces and links over the API, on SQLite and PostgreSQL."""

from sqlalchemy import select

from faultloop.audit.models import AuditEntry


def _site(client, h, name="site-a"):
    r = client.post("/api/v1/sites", json={"name": name, "description": "test"}, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


def _device(client, h, hostname="r1", **extra):
    body = {
        "hostname": hostname,
        "address": "127.0.1.1",
        "role": "core",
        "device_type": "cisco_ios",
        "vendor": "cisco",
        "platform": "ios",
        **extra,
    }
    return client.post("/api/v1/devices", json=body, headers=h)


def test_device_crud_and_secrets_never_returned(client, auth):
    h = auth("admin")
    _site(client, h)
    r = _device(
        client,
        h,
        site="site-a",
        tags=["lab", "core"],
        snmp={"version": "v2c", "community": "s3cret-comm"},
        ssh={"username": "ops", "password": "ssh-pass-123"},
        interfaces=[{"name": "Gi0/1", "if_index": 1, "speed_mbps": 1000}],
    )
    assert r.status_code == 201, r.text
    dev = r.json()
    assert dev["snmp"] == {
        "version": "v2c",
        "port": 161,
        "user": None,
        "auth_protocol": None,
        "priv_protocol": None,
        "has_community": True,
        "has_auth_key": False,
        "has_priv_key": False,
    }
    assert dev["ssh"]["has_password"] is True
    assert "s3cret-comm" not in r.text and "ssh-pass-123" not in r.text
    assert dev["tags"] == ["core", "lab"]

    r = client.patch(f"/api/v1/devices/{dev['id']}", json={"role": "distribution"}, headers=h)
    assert r.status_code == 200 and r.json()["role"] == "distribution"
    r = client.get(f"/api/v1/devices/{dev['id']}/interfaces", headers=h)
    assert [i["name"] for i in r.json()] == ["Gi0/1"]
    assert client.delete(f"/api/v1/devices/{dev['id']}", headers=h).status_code == 204
    assert client.get(f"/api/v1/devices/{dev['id']}", headers=h).status_code == 404


def test_duplicate_hostname_is_409(client, auth):
    h = auth("noc")
    assert _device(client, h).status_code == 201
    r = _device(client, h)
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "r1" in r.json()["detail"]


def test_422_names_the_field(client, auth):
    h = auth("admin")
    cases = [
        ({"address": "10.0.0.300"}, "address", "IPv4 or IPv6"),
        ({"role": "boss"}, "role", "core"),
        ({"device_type": "cisco_iox"}, "device_type", "unknown netmiko device_type"),
        (
            {"snmp": {"version": "v3", "user": "u", "auth_protocol": "MD5", "auth_key": "12345678"}},
            "snmp",
            "MD5 needs allow_weak",
        ),
        (
            {
                "snmp": {
                    "version": "v3",
                    "user": "u",
                    "auth_protocol": "SHA",
                    "auth_key": "k",
                    "priv_protocol": "AES-128",
                    "priv_key": "12345678",
                }
            },
            "snmp",
            "auth_key",
        ),
        ({"snmp": {"version": "v2c"}}, "snmp", "community is required"),
        ({"hostname": "bad host"}, "hostname", "letters, digits"),
        ({"bogus": 1}, "bogus", "Extra inputs"),
    ]
    for extra, field, text in cases:
        r = _device(client, h, **extra)
        assert r.status_code == 422, (extra, r.text)
        body = r.json()
        assert any(e["field"].startswith(field) for e in body["errors"]), (field, body)
        assert text in body["detail"], (text, body["detail"])
    assert client.get("/api/v1/devices", headers=h).json()["total"] == 0


def test_weak_crypto_allowed_when_explicit(client, auth):
    r = _device(
        client,
        auth("admin"),
        snmp={
            "version": "v3",
            "user": "old",
            "auth_protocol": "MD5",
            "auth_key": "12345678",
            "priv_protocol": "DES",
            "priv_key": "abcdefgh",
            "allow_weak": True,
        },
    )
    assert r.status_code == 201, r.text


def test_422_never_echoes_input(client, auth):
    r = _device(client, auth("admin"), snmp={"version": "v3", "community": "marker-XYZ-123", "user": "u"})
    assert r.status_code == 422
    assert "marker-XYZ-123" not in r.text


def test_pagination_and_filters(client, auth):
    h = auth("admin")
    _site(client, h, "north")
    _site(client, h, "south")
    for i in range(7):
        r = _device(
            client,
            h,
            hostname=f"acc{i}",
            address=f"127.0.2.{i + 1}",
            role="access",
            site="north" if i % 2 else "south",
            tags=["even"] if i % 2 == 0 else [],
        )
        assert r.status_code == 201
    page = client.get("/api/v1/devices", params={"limit": 3, "offset": 3}, headers=h).json()
    assert page["total"] == 7 and [d["hostname"] for d in page["items"]] == ["acc3", "acc4", "acc5"]
    north = client.get("/api/v1/devices", params={"site": "north"}, headers=h).json()
    assert north["total"] == 3
    even = client.get("/api/v1/devices", params={"tag": "even"}, headers=h).json()
    assert even["total"] == 4
    for wildcard in ("%", "_", "acc_"):  # LIKE wildcards in a search are literal characters
        assert client.get("/api/v1/devices", params={"q": wildcard}, headers=h).json()["total"] == 0
    assert client.get("/api/v1/devices", params={"tag": "ev_n"}, headers=h).json()["total"] == 0
    q = client.get("/api/v1/devices", params={"q": "127.0.2.7"}, headers=h).json()
    assert [d["hostname"] for d in q["items"]] == ["acc6"]
    r = client.get("/api/v1/devices", params={"limit": 100000}, headers=h)
    assert r.status_code == 422 and "limit" in r.json()["detail"]
    r = client.get("/api/v1/devices", params={"offset": -1}, headers=h)
    assert r.status_code == 422 and "offset" in r.json()["detail"]


def test_links_and_interfaces(client, auth):
    h = auth("admin")
    a = _device(client, h, hostname="a", interfaces=[{"name": "Gi0/1"}]).json()
    b = _device(client, h, hostname="b", address="127.0.1.2", interfaces=[{"name": "Gi0/1"}]).json()
    link = {"a_device": "a", "a_interface": "Gi0/1", "b_device": "b", "b_interface": "Gi0/1"}
    r = client.post("/api/v1/links", json=link, headers=h)
    assert r.status_code == 201, r.text
    assert {r.json()["a"]["device"], r.json()["b"]["device"]} == {"a", "b"}
    reverse = {"a_device": "b", "a_interface": "Gi0/1", "b_device": "a", "b_interface": "Gi0/1"}
    assert client.post("/api/v1/links", json=reverse, headers=h).status_code == 409
    bad = {**link, "b_interface": "Gi9/9"}
    r = client.post("/api/v1/links", json=bad, headers=h)
    assert r.status_code == 422 and "Gi9/9" in r.json()["detail"]
    links = client.get("/api/v1/links", params={"device": "a"}, headers=h).json()
    assert links["total"] == 1
    r = client.post(f"/api/v1/devices/{a['id']}/interfaces", json={"name": "Gi0/2", "if_index": 2}, headers=h)
    assert r.status_code == 201
    itf = r.json()
    r = client.patch(f"/api/v1/interfaces/{itf['id']}", json={"description": "uplink"}, headers=h)
    assert r.json()["description"] == "uplink"
    r = client.post(f"/api/v1/devices/{a['id']}/interfaces", json={"name": "Gi0/2"}, headers=h)
    assert r.status_code == 409
    r = client.post(f"/api/v1/devices/{b['id']}/interfaces", json={"name": "bad\r\nshutdown"}, headers=h)
    assert r.status_code == 422 and "control characters" in r.json()["detail"]


def test_every_change_is_audited(client, auth, session):
    h = auth("admin")
    site = _site(client, h)
    dev = _device(client, h, site="site-a", snmp={"version": "v2c", "community": "audit-marker-42"}).json()
    client.patch(f"/api/v1/devices/{dev['id']}", json={"role": "access"}, headers=h)
    client.delete(f"/api/v1/devices/{dev['id']}", headers=h)
    client.put(f"/api/v1/sites/{site['id']}", json={"name": "site-b"}, headers=h)
    session.expire_all()
    entries = session.scalars(select(AuditEntry).where(AuditEntry.actor == "admin-user").order_by(AuditEntry.id)).all()
    actions = [e.action for e in entries]
    assert actions == ["site.create", "device.create", "device.update", "device.delete", "site.update"]
    update = entries[2]
    assert update.before["role"] == "core" and update.after["role"] == "access"
    assert all("audit-marker-42" not in str(e.before) + str(e.after) for e in entries)
    r = client.get("/api/v1/audit", params={"object_type": "device"}, headers=h)
    assert r.status_code == 200 and r.json()["total"] == 3
    assert client.get("/api/v1/audit", headers=auth("viewer")).status_code == 403


def test_failed_request_writes_nothing(client, auth, session):
    h = auth("admin")
    r = _device(client, h, parents=["does-not-exist"])
    assert r.status_code == 422 and "does-not-exist" in r.json()["detail"]
    assert client.get("/api/v1/devices", headers=h).json()["total"] == 0
    session.expire_all()
    assert session.scalars(select(AuditEntry).where(AuditEntry.action == "device.create")).all() == []


def test_login_issues_a_token(client, session):
    from faultloop.accounts import service as accounts

    accounts.create_user(session, username="alice", role="noc", password="correct horse", actor="t")
    session.commit()
    r = client.post("/api/v1/auth/token", json={"username": "alice", "password": "wrong password"})
    assert r.status_code == 401 and r.json()["detail"] == "invalid username or password"
    r = client.post("/api/v1/auth/token", json={"username": "alice", "password": "correct horse"})
    assert r.status_code == 201
    token = r.json()["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["username"] == "alice" and me["role"] == "noc"


def test_admin_creates_users_and_unknown_role_is_422(client, auth):
    h = auth("admin")
    r = client.post("/api/v1/users", json={"username": "bob", "role": "wizard"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "role"
    r = client.post(
        "/api/v1/users", json={"username": "bob", "role": "technician", "password": "long enough pw"}, headers=h
    )
    assert r.status_code == 201 and r.json()["role"] == "technician"
    r = client.post("/api/v1/users", json={"username": "bob", "role": "viewer"}, headers=h)
    assert r.status_code == 409
    r = client.post("/api/v1/users", json={"username": "carol", "role": "viewer", "password": "short"}, headers=h)
    assert r.status_code == 422 and "password" in r.json()["detail"]


# ---- re-addressing a device (issue 15, item 3) -------------------------------------------------


def _pinned_device(client, h, session):
    from devices import hostkeys
    from devices.hostkeys import OfferedKey, fingerprint

    r = _device(
        client,
        h,
        hostname="moved1",
        snmp={"version": "v2c", "community": "old-community"},
        ssh={"username": "ops", "password": "old-ssh-pass"},
    )
    assert r.status_code == 201, r.text
    dev = r.json()
    key_b64 = "AAAAC3NzaC1lZDI1NTE5AAAAIHxuPj3FpQMW3d8xJd1QW6Cw0d0uC3KX5WlqKx1gW5cR"
    hostkeys.record_seen(
        session, device_id=dev["id"], offered=OfferedKey("ssh-ed25519", key_b64, fingerprint(key_b64)), trust=True
    )
    session.commit()
    return dev


def _state(session, device_id):
    from devices.hostkeys import get_host_key
    from inventory.models import Device

    session.expire_all()
    device = session.get(Device, device_id)
    return device.address, device.snmp_community_enc, device.ssh_password_enc, get_host_key(session, device_id)


def test_new_address_requires_the_credentials_again_and_changes_nothing_without(client, auth, session):
    h = auth("noc")
    dev = _pinned_device(client, h, session)
    before = _state(session, dev["id"])
    url = f"/api/v1/devices/{dev['id']}"
    cases = [
        ({"address": "192.0.2.66"}, "snmp", "snmp: the address changes from 127.0.1.1 to 192.0.2.66; re-enter"),
        (
            {"address": "192.0.2.66", "snmp": {"version": "v2c", "community": "new-community"}},
            "ssh",
            "ssh: the address changes",
        ),
        ({"address": "192.0.2.66", "role": "access", "ssh": None}, "snmp", "snmp: the address changes"),
    ]
    for body, field, message in cases:
        r = client.patch(url, json=body, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field and message in r.json()["detail"], r.json()
        assert "old-community" not in r.text and "old-ssh-pass" not in r.text
        assert _state(session, dev["id"]) == before  # nothing partially written, the pin kept

    # a noc engineer may not keep them; the refusal names the field and writes nothing
    r = client.patch(url, json={"address": "192.0.2.66", "keep_credentials": True}, headers=h)
    assert r.status_code == 403 and r.json()["field"] == "keep_credentials", r.text
    assert _state(session, dev["id"]) == before

    # re-entered (SSH dropped): the new address gets the new secret and meets no old pin
    r = client.patch(
        url,
        json={"address": "192.0.2.66", "snmp": {"version": "v2c", "community": "new-community"}, "ssh": None},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["address"] == "192.0.2.66" and r.json()["ssh"] is None
    address, community_enc, ssh_enc, pin = _state(session, dev["id"])
    assert address == "192.0.2.66" and ssh_enc is None and pin is None
    assert community_enc != before[1]
    forget = session.scalars(select(AuditEntry).where(AuditEntry.action == "ssh_host_key.forget")).one()
    assert (forget.object_id, forget.actor) == (str(dev["id"]), "noc-user")
    assert forget.after == {"reason": "address changed"} and forget.before["fingerprint"].startswith("SHA256:")

    # the same address again is no change: no credentials needed
    assert client.patch(url, json={"address": "192.0.2.66", "role": "core"}, headers=h).status_code == 200


def test_admin_may_keep_credentials_audited_and_the_pin_is_reset(client, auth, session):
    h = auth("admin")
    dev = _pinned_device(client, h, session)
    before = _state(session, dev["id"])
    r = client.patch(
        f"/api/v1/devices/{dev['id']}", json={"address": "192.0.2.77", "keep_credentials": True}, headers=h
    )
    assert r.status_code == 200, r.text
    address, community_enc, ssh_enc, pin = _state(session, dev["id"])
    assert (address, community_enc, ssh_enc, pin) == ("192.0.2.77", before[1], before[2], None)
    kept = session.scalars(select(AuditEntry).where(AuditEntry.action == "device.readdress_keep_credentials")).one()
    assert (kept.actor, kept.object_id) == ("admin-user", str(dev["id"]))
    assert kept.before == {"address": "127.0.1.1"}
    assert kept.after == {"address": "192.0.2.77", "kept": ["snmp", "ssh"]}
    assert "old-community" not in str(kept.after) and "old-ssh-pass" not in str(kept.after)


def test_collector_group_defaults_is_set_filtered_and_validated(client, auth, session):
    from inventory import queries

    h = auth("admin")
    assert _device(client, h, "r1").json()["collector_group"] == "default"
    r = _device(client, h, "r2", address="127.0.1.2", collector_group="site-east")
    assert r.status_code == 201, r.text
    assert r.json()["collector_group"] == "site-east"
    bad = _device(client, h, "r3", address="127.0.1.3", collector_group="east side!")
    assert bad.status_code == 422
    assert "collector_group" in bad.text
    assert client.get("/api/v1/devices", headers=h).json()["total"] == 2  # nothing written
    moved = client.patch(f"/api/v1/devices/{r.json()['id']}", json={"collector_group": "west"}, headers=h)
    assert moved.status_code == 200, moved.text
    assert queries.collector_groups(session) == ["default", "west"]
    assert [d.hostname for d in queries.devices(session, collector_group="west")] == ["r2"]
    assert queries.device_addresses(session, collector_group="west") == [("r2", "127.0.1.2")]
