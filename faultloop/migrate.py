"""Schema migrations with Alembic, driven from code (no alembic.ini to find)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


VERSION_WIDTH = 64  # Alembic's own table holds 32 characters; one released revision id is longer


def _wide_version_table(conn: Connection) -> None:
    """PostgreSQL enforces the width of alembic_version.version_num (SQLite does not): create it, or
    widen it, to hold revision ids longer than Alembic's default 32 characters."""
    if conn.dialect.name != "postgresql":
        return
    if inspect(conn).has_table("alembic_version"):
        conn.execute(text(f"ALTER TABLE alembic_version ALTER COLUMN version_num TYPE VARCHAR({VERSION_WIDTH})"))
    else:
        conn.execute(text(
            f"CREATE TABLE alembic_version (version_num VARCHAR({VERSION_WIDTH}) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        ))  # fmt: skip


def upgrade(engine: Engine, revision: str = "heads") -> None:
    cfg = _config()
    with engine.begin() as conn:
        _wide_version_table(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


# Each domain package may add its own branch of revisions from the same base, so the
# schema is "current" when every head is applied (no merge revisions needed).


def head_revision() -> str | None:
    heads = sorted(ScriptDirectory.from_config(_config()).get_heads())
    return ",".join(heads) or None


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        heads = sorted(MigrationContext.configure(conn).get_current_heads())
    return ",".join(heads) or None


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def autogenerate(engine: Engine, message: str, metadata: MetaData) -> None:
    """Developer helper: write a new revision from the model changes (``metadata``: every
    package's tables, from faultloop.cmd.models.all_metadata)."""
    cfg = _config()
    cfg.attributes["target_metadata"] = metadata
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
