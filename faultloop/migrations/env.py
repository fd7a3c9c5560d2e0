"""Alembic environment: runs on the connection handed over by faultloop.migrate."""

from __future__ import annotations

from alembic import context

config = context.config
# Upgrades run the revisions as written; only autogenerate compares with the models, whose
# metadata the caller (faultloop.cmd.models) hands in.
target_metadata = config.attributes.get("target_metadata")


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through faultloop.migrate, which passes a connection")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
