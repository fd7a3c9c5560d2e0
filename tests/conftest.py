"""Shared fixtures.

The database fixtures run on SQLite always and, when FAULTLOOP_TEST_DATABASE_URL is set,
on PostgreSQL too: every test that uses `session`, `runtime` or `client` runs once per
backend. Each test runs inside a transaction that is rolled back at the end; the code
under test commits savepoints only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_api
from faultloop import migrate
from faultloop.accounts import service as accounts
from faultloop.db import make_engine
from faultloop.runtime import Runtime
from faultloop.settings import Settings
from faultloop.vault import Vault
from tests.pgdb import PG_URL, scratch_database

BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(scope="session", params=BACKENDS)
def db_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        yield engine
        engine.dispose()
        return
    with scratch_database(prefix="faultloop_t") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def connection(db_engine: Engine) -> Iterator:
    conn = db_engine.connect()
    outer = conn.begin()
    try:
        yield conn
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture
def sessions(connection) -> sessionmaker[Session]:
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    s = sessions()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", secret_key=Fernet.generate_key().decode())


@pytest.fixture
def vault(settings: Settings) -> Vault:
    assert settings.secret_key is not None
    return Vault([settings.secret_key.get_secret_value().encode()])


@pytest.fixture
def runtime(settings: Settings, db_engine: Engine, sessions, vault: Vault) -> Runtime:
    return Runtime(settings=settings, engine=db_engine, sessions=sessions, vault=vault)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_api(runtime), raise_server_exceptions=False) as c:
        yield c


def make_token(session: Session, username: str, role: str) -> str:
    user = accounts.create_user(session, username=username, role=role, password=None, actor="test")
    _row, token = accounts.create_token(session, user=user, name="test", ttl_days=1, actor="test")
    session.commit()
    return token


@pytest.fixture
def auth(session: Session):
    """auth("admin") -> headers for a fresh user with that role."""
    made: dict[str, dict[str, str]] = {}

    def headers(role: str) -> dict[str, str]:
        if role not in made:
            made[role] = {"Authorization": f"Bearer {make_token(session, f'{role}-user', role)}"}
        return made[role]

    return headers
