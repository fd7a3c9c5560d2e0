"""Domain errors shared by every package; ``api/`` maps them once to problem+json."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration file is invalid or unreadable (trap map, SNMPv3 users, syslog rules,
    CLI command table, service catalog). The message names the file, the entry and the
    field, never a secret from it; a command prints it as one line and exits 2."""


class DomainError(Exception):
    status = 400
    title = "Bad request"
    retry_after: int | None = None  # seconds; sent as the Retry-After header when set

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


class TooManyRequests(DomainError):
    """429: a rate limit or a cap on the caller was reached; retry after ``retry_after`` seconds."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, field: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.retry_after = max(1, int(retry_after))


class Busy(DomainError):
    """503: the service is at a capacity it keeps for everyone; retry after ``retry_after`` seconds."""

    status = 503
    title = "Service busy"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


class IllegalTransition(Conflict):
    """409: the action is not in the state table for the current state; the problem body lists
    ``allowed_actions`` (faultloop.statemachine)."""

    def __init__(self, detail: str, *, allowed: list[str]) -> None:
        super().__init__(detail, field="action")
        self.allowed = allowed
        self.problem_extra = {"allowed_actions": allowed}
