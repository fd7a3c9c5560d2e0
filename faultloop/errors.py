"""Domain errors shared by every package; ``api/`` maps them once to problem+json."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration file is invalid or unreadable (trap map, SNMPv3 users, syslog rules,
    CLI command table, service catalog). The message names the file, the entry and the
    field, never a secret from it; a command prints it as one line and exits 2."""


class DomainError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class InvalidInput(DomainError):
    status = 422
    title = "Invalid input"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"


class IllegalTransition(Conflict):
    """409: the action is not in the state table for the current state; the problem body lists
    ``allowed_actions`` (faultloop.statemachine)."""

    def __init__(self, detail: str, *, allowed: list[str]) -> None:
        super().__init__(detail, field="action")
        self.allowed = allowed
        self.problem_extra = {"allowed_actions": allowed}
