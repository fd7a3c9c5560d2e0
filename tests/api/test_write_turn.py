"""An API write on SQLite waits for its turn instead of failing (issue 15, item 15).

The fuzzer's light load got 503 "Database busy" on ``PUT /alarms/{id}/severity``: the
handler read the alarm, another connection committed, and SQLite refused the handler's
write at once (a deferred transaction cannot write from a snapshot older than another
commit). Now the writing transaction begins ``IMMEDIATE`` before the handler reads."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from api.main import create_api
from tests.collectors import cli_lab
from tests.conftest import make_token
from tests.ticketing.conftest import make_alarm

file_runtime = cli_lab.file_runtime


class OtherWriter:
    """Another connection (the alarm engine, say) that tries to commit a write the moment
    the request sends its first UPDATE of ``table``: between the handler's read and its write."""

    def __init__(self, rt, table: str, sql: str, params: tuple) -> None:
        self.rt, self.prefix, self.sql, self.params = rt, f"UPDATE {table} ", sql, params
        self.outcome: str | None = None
        # timeout=0: never wait here, the test thread is the one serving the request
        self.conn = sqlite3.connect(
            str(rt.engine.url.database), isolation_level=None, timeout=0, check_same_thread=False
        )

    def __enter__(self) -> OtherWriter:
        event.listen(self.rt.engine, "before_cursor_execute", self._before)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.rt.engine, "before_cursor_execute", self._before)
        self.conn.close()

    def _before(self, conn, cursor, statement, params, context, executemany) -> None:
        if self.outcome is None and statement.startswith(self.prefix):
            try:
                self.conn.execute(self.sql, self.params)
                self.outcome = "committed first"
            except sqlite3.OperationalError as exc:
                self.outcome = str(exc)

    def write_now(self) -> None:
        self.conn.execute(self.sql, self.params)


@pytest.fixture
def alarm_and_headers(file_runtime):
    with file_runtime.sessions() as session:
        headers = {"Authorization": f"Bearer {make_token(session, 'op', 'admin')}"}
        alarm = make_alarm(session, device="r1", severity="major")
        session.commit()
        return alarm.id, headers


def test_a_write_overtaken_between_its_read_and_its_write_waits_its_turn(file_runtime, alarm_and_headers):
    alarm_id, headers = alarm_and_headers
    bump = "UPDATE alarms SET count = count + 1 WHERE id = ?"
    other = OtherWriter(file_runtime, "alarms", bump, (alarm_id,))
    with TestClient(create_api(file_runtime)) as client, other:
        r = client.put(f"/api/v1/alarms/{alarm_id}/severity", json={"severity": "critical"}, headers=headers)
        assert r.status_code == 200, r.text
        # the request held the write lock from before its read: the other writer had to wait
        assert other.outcome == "database is locked"
        other.write_now()  # and goes next
        detail = client.get(f"/api/v1/alarms/{alarm_id}", headers=headers).json()
    assert detail["severity"] == "critical" and detail["count"] == 2
    assert [j["action"] for j in detail["journal"]][-1] == "severity_changed"


@pytest.mark.parametrize(
    ("method", "path", "body", "table"),
    [
        ("POST", "/api/v1/alarms/{id}/ack", None, "alarms"),
        ("POST", "/api/v1/alarms/{id}/clear", {"reason": "fixed"}, "alarms"),
    ],
)
def test_other_alarm_writes_wait_their_turn(file_runtime, alarm_and_headers, method, path, body, table):
    alarm_id, headers = alarm_and_headers
    bump = "UPDATE alarms SET count = count + 1 WHERE id = ?"
    other = OtherWriter(file_runtime, table, bump, (alarm_id,))
    with TestClient(create_api(file_runtime)) as client, other:
        r = client.request(method, path.format(id=alarm_id), json=body, headers=headers)
        assert r.status_code == 200, r.text
        assert other.outcome == "database is locked"
