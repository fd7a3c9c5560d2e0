"""Alembic keeps the applied revision ids in alembic_version.version_num, VARCHAR(32) on
PostgreSQL: a longer id works on SQLite and breaks every upgrade on PostgreSQL."""

from alembic.script import ScriptDirectory

from faultloop import migrate


def test_every_revision_id_fits_postgresqls_alembic_version_column():
    script = ScriptDirectory.from_config(migrate._config())
    too_long = [r.revision for r in script.walk_revisions() if len(r.revision) > 32]
    assert too_long == []
