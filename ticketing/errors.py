"""Ticketing errors: the shared domain errors (mapped once to problem+json in api/; an illegal
action is ``faultloop.errors.IllegalTransition``) plus the 409s here."""

from __future__ import annotations

from faultloop.errors import Conflict


class StaleVersion(Conflict):
    """The client's version / If-Match is not the ticket's current version (someone else changed it)."""


class DatabaseBusy(StaleVersion):
    """SQLite refused a write because another transaction committed since this one read (WAL snapshot).

    The API retries the whole request in a fresh transaction; a caller that cannot retry sees a 409.
    """


class IdempotencyInProgress(Conflict):
    """Another request with the same Idempotency-Key has not finished yet."""


__all__ = ["DatabaseBusy", "IdempotencyInProgress", "StaleVersion"]
