"""The model registry: every package's tables in one metadata, for Alembic's autogenerate
and the tests. Only the composition root may know every package."""

from __future__ import annotations

from sqlalchemy import MetaData

from faultloop.db import Base


def all_metadata() -> MetaData:
    """Import every package's models so that ``Base.metadata`` is complete, and return it."""
    import alarms.models  # noqa: F401
    import collectors.backup_models  # noqa: F401
    import collectors.models  # noqa: F401
    import devices.models  # noqa: F401
    import faultloop.accounts.models  # noqa: F401
    import faultloop.audit.models  # noqa: F401
    import faultloop.inbox  # noqa: F401
    import faultloop.leader  # noqa: F401
    import inventory.models  # noqa: F401
    import northbound.models  # noqa: F401
    import northbound.ticket_models  # noqa: F401
    import provisioning.models  # noqa: F401
    import ticketing.models  # noqa: F401

    return Base.metadata
