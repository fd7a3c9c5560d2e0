"""Migration h15net2_0001_if_by_ifindex: interfaces identified by ifIndex; existing rows are
carried over (on SQLite and PostgreSQL, whose alembic_version column holds 32 characters)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError

from faultloop import migrate
from faultloop.db import make_engine
from tests.conftest import BACKENDS
from tests.pgdb import _admin_url as _pg_admin_url


@pytest.fixture(params=BACKENDS)
def empty_engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
        yield engine
        engine.dispose()
        return
    name = f"faultloop_m_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_existing_interfaces_are_carried_over_and_a_shared_ifindex_stays_on_the_oldest_row(empty_engine):
    migrate.upgrade(empty_engine, "h15net_0001_inventory_revision")
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO devices (id, hostname, address, vendor, platform, device_type, role, tags, snmp_port, "
                "snmp_allow_weak, ssh_port, ssh_host_key_policy, created_at, updated_at) VALUES "
                "(1, 'pe1', '127.0.0.1', '', '', '', 'core', '[]', 161, false, 22, 'tofu', "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        for row_id, name, if_index in ((1, "lo0", 7), (2, "loopback0", 7), (3, "Gi0/1", 1), (4, "spare", None)):
            conn.execute(
                text(
                    "INSERT INTO interfaces (id, device_id, name, if_index, description, admin_status, oper_status) "
                    "VALUES (:id, 1, :name, :if_index, 'operator text', 'up', 'up')"
                ),
                {"id": row_id, "name": name, "if_index": if_index},
            )
    migrate.upgrade(empty_engine)
    assert migrate.is_current(empty_engine)
    with empty_engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name, if_index, description, alias FROM interfaces ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        (1, "lo0", 7, "operator text", ""),
        (2, "loopback0", None, "operator text", ""),
        (3, "Gi0/1", 1, "operator text", ""),
        (4, "spare", None, "operator text", ""),
    ]
    with pytest.raises(IntegrityError), empty_engine.begin() as conn:  # one row per device and ifIndex from now on
        conn.execute(text("UPDATE interfaces SET if_index = 1 WHERE id = 4"))
