"""Stored configurations (config backups, planned order diffs) at rest: seal what an older version
stored in clear, re-encrypt on a key rotation. A migration has no key, so this runs where the key
is: `faultloop db upgrade`, the start of `faultloop serve` / `faultloop demo`, and `faultloop secrets
rotate` (which re-encrypts them with the device secrets, faultloop/cmd/cli/db.py)."""

from __future__ import annotations

from collectors import backup
from faultloop.db import checkpoint_wal, scrub_freed_space, transaction
from faultloop.runtime import Runtime
from provisioning import service as orders


def seal_stored_configs(rt: Runtime) -> int:
    """Encrypt every config backup and planned order diff still stored in clear (one
    transaction); how many were."""
    with transaction(rt.sessions, write=True) as session:
        scrub_freed_space(session)
        count = backup.seal_backups(session, rt.vault) + orders.seal_order_diffs(session, rt.vault)
    if count:
        checkpoint_wal(rt.engine)
    return count

