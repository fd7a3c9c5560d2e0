"""Issue 15 item 6: planned order diffs hold running configuration around the changed lines, so they
are encrypted at rest like config backups: diffs an older release stored in clear are sealed where
the key is (`db upgrade`, service start, `secrets rotate`), rotation re-encrypts them, and item
messages never quote configuration lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from faultloop import migrate
from faultloop.cmd.atrest import seal_stored_configs
from faultloop.db import transaction
from faultloop.runtime import build_runtime
from faultloop.settings import Settings
from faultloop.vault import Vault, VaultError
from provisioning import service as orders
from provisioning.models import OrderItem

MARKER = "Ctx-Secret-41d7"
LEGACY_DIFF = (
    "--- sw1 (latest backup)\n+++ sw1 (planned)\n@@ -1,3 +1,4 @@\n hostname sw1\n"
    f" snmp-server community {MARKER} RO\n+vlan 300\n interface GigabitEthernet0/2\n"
)
LEGACY_MESSAGE = (
    "push: device rejected the configuration: % Invalid input; rollback left 2 line(s) different from "
    f"the backup: ['-snmp-server community {MARKER} RO', '+vlan 300']"
)


def _db_bytes(rt) -> bytes:
    path = Path(rt.engine.url.database)
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_diffs_stored_in_clear_are_sealed_and_quoted_lines_cut_from_messages(tmp_path) -> None:
    key = Fernet.generate_key().decode()
    rt = build_runtime(Settings(data_dir=tmp_path / "var", secret_key=key))
    migrate.upgrade(rt.engine, "0006_provisioning")  # a database as a release before h15fin_0001 left it
    with rt.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO devices (id, hostname, address, vendor, platform, device_type, role, tags, created_at, "
                "updated_at, snmp_port, snmp_allow_weak, ssh_port, ssh_host_key_policy) VALUES (1, 'sw1', "
                "'127.0.0.9', 'cisco', 'ios', 'cisco_ios', 'access', '[]', '2026-01-01', '2026-01-01', 161, false, "
                "22, 'tofu')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO service_orders (id, action, service_type, customer, state, request, created_by, "
                "created_at, updated_at, result) VALUES (1, 'activate', 'l2_vlan', 'ACME', 'rolled_back', '{}', "
                "'pat', '2026-01-01', '2026-01-01', '')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO service_order_items (order_id, device_id, seq, params, commands, inverse, diff, "
                "status, message) VALUES (1, 1, 0, '{}', '[]', '[]', :diff, 'rollback_failed', :message)"
            ),
            {"diff": LEGACY_DIFF, "message": LEGACY_MESSAGE},
        )
    migrate.upgrade(rt.engine)
    with transaction(rt.sessions) as session:  # carried over, readable before it is sealed
        item = session.scalars(select(OrderItem)).one()
        assert item.diff_encrypted is None and orders.item_diff(rt.vault, item) == LEGACY_DIFF
        # the migration needs no key to cut the quoted lines: it keeps the count
        assert item.message == (
            "push: device rejected the configuration: % Invalid input; rollback left 2 line(s) different from "
            "the backup (lines not quoted: they are configuration)"
        )
    assert seal_stored_configs(rt) == 1
    assert seal_stored_configs(rt) == 0  # nothing left in clear
    with transaction(rt.sessions) as session:
        item = session.scalars(select(OrderItem)).one()
        assert item.diff == "" and item.diff_encrypted is not None
        assert orders.item_diff(rt.vault, item) == LEGACY_DIFF
        view = orders.order_out(session, orders.get_order(session, 1), vault=rt.vault, role="viewer")
        assert view.items[0].diff.splitlines() == ["--- sw1 (latest backup)", "+++ sw1 (planned)",
                                                   "@@ -1,3 +1,4 @@", "+vlan 300"]  # fmt: skip
    assert MARKER.encode() not in _db_bytes(rt)  # scrubbed from the file, not only unlinked from the row
    rt.engine.dispose()


def test_rotation_re_encrypts_planned_diffs(tmp_path) -> None:
    key = Fernet.generate_key().decode()
    rt = build_runtime(Settings(data_dir=tmp_path / "var", secret_key=key))
    migrate.upgrade(rt.engine)
    with transaction(rt.sessions) as session:
        session.execute(
            text(
                "INSERT INTO devices (id, hostname, address, vendor, platform, device_type, role, tags, created_at, "
                "updated_at, snmp_port, snmp_allow_weak, ssh_port, ssh_host_key_policy) VALUES (1, 'sw1', "
                "'127.0.0.9', 'cisco', 'ios', 'cisco_ios', 'access', '[]', '2026-01-01', '2026-01-01', 161, false, "
                "22, 'tofu')"
            )
        )
        session.execute(
            text(
                "INSERT INTO service_orders (id, action, service_type, customer, state, request, created_by, "
                "created_at, updated_at, result) VALUES (1, 'activate', 'l2_vlan', 'ACME', 'planned', '{}', "
                "'pat', '2026-01-01', '2026-01-01', ''), (2, 'activate', 'l2_vlan', 'ACME', 'draft', '{}', "
                "'pat', '2026-01-01', '2026-01-01', '')"
            )
        )
        session.add(OrderItem(order_id=1, device_id=1, seq=0, params={}, commands=[], inverse=[], diff="",
                              diff_encrypted=rt.vault.encrypt(LEGACY_DIFF), status="planned", message=""))  # fmt: skip
        session.add(OrderItem(order_id=2, device_id=1, seq=0, params={}, commands=[], inverse=[], diff="",
                              status="pending", message=""))  # fmt: skip  # not planned yet: nothing to rotate
    old = rt.vault
    new = Vault([Fernet.generate_key(), *old.keys])
    with transaction(rt.sessions) as session:
        assert orders.rotate_order_diffs(session, new) == 1
    only_new = Vault(new.keys[:1])
    with transaction(rt.sessions) as session:
        item = session.scalars(select(OrderItem).where(OrderItem.order_id == 1)).one()
        assert orders.item_diff(only_new, item) == LEGACY_DIFF
        with pytest.raises(VaultError):
            orders.item_diff(old, item)  # the old key alone opens nothing any more
    rt.engine.dispose()
