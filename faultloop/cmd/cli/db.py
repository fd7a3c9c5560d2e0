"""`faultloop db ...` and `faultloop secrets rotate`: the schema and the secrets at rest."""

from __future__ import annotations

import typer

from collectors import backup
from faultloop import migrate
from faultloop.cmd.cli.common import CliError, cli_settings, err, open_runtime, out
from faultloop.db import checkpoint_wal, safe_url, scrub_freed_space, transaction
from faultloop.runtime import Runtime, no_service_running
from faultloop.settings import Settings
from faultloop.vault import finish_key_file, key_from_env, prepend_key_file
from inventory import service as inventory
from provisioning import service as orders

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
secrets_app = typer.Typer(no_args_is_help=True, help="Secrets at rest.")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(secrets_app, name="secrets")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from faultloop.cmd.atrest import seal_stored_configs

    rt = open_runtime(require_current=False)
    migrate.upgrade(rt.engine)
    err.print(f"database at {safe_url(rt.settings.effective_database_url)} is at {migrate.current_revision(rt.engine)}")
    sealed = seal_stored_configs(rt)  # rows an older version stored in clear: the migration had no key
    if sealed:
        err.print(f"encrypted {sealed} stored config(s) kept in clear")


@db_app.command("current")
def db_current() -> None:
    """Show the applied and the expected migration."""
    rt = open_runtime(require_current=False)
    out.print(f"current {migrate.current_revision(rt.engine)}, head {migrate.head_revision()}")


# ---- secrets ----------------------------------------------------------------------


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored secret under a new key.

    With a key file, a new key is generated and the old one retired. With
    FAULTLOOP_SECRET_KEY, put the new key first ("NEW,OLD") and run this; then drop OLD.
    Refused while `faultloop serve` runs on the same data directory: it loaded the keys once."""
    settings = cli_settings()
    with no_service_running(settings, doing="run `faultloop secrets rotate`"):
        _rotate(settings)


def _rotate_all(rt: Runtime) -> tuple[int, int]:
    """Device secrets and stored configurations, in one transaction: a row the keys cannot open
    stops the rotation with nothing changed (and the key file not yet retired)."""
    with transaction(rt.sessions, write=True) as session:
        scrub_freed_space(session)
        count = inventory.rotate_secrets(session, rt.vault)
        configs = backup.rotate_backups(session, rt.vault) + orders.rotate_order_diffs(session, rt.vault)
    checkpoint_wal(rt.engine)
    return count, configs


def _rotate(settings: Settings) -> None:
    if key_from_env(settings):
        rt = open_runtime()
        if len(rt.vault.keys) < 2:
            raise CliError('FAULTLOOP_SECRET_KEY holds one key; set it to "NEW,OLD" to rotate')
        count, configs = _rotate_all(rt)
        err.print(
            f"re-encrypted {count} secret(s) and {configs} stored configuration(s) under the first key; "
            "now remove the old key from FAULTLOOP_SECRET_KEY"
        )
        return
    keys = prepend_key_file(settings)
    rt = open_runtime()
    count, configs = _rotate_all(rt)
    finish_key_file(settings, keys)
    err.print(
        f"re-encrypted {count} secret(s) and {configs} stored configuration(s) "
        f"under a new key in {settings.secret_key_file}"
    )
