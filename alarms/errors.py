"""Errors of the alarm package; all are faultloop domain errors, mapped once to problem+json."""

from __future__ import annotations

from faultloop.errors import InvalidInput


class RuleError(InvalidInput):
    """A rule or scenario file is invalid; the message names file, rule and field."""

    def __init__(self, file: str, rule: str, field: str, message: str) -> None:
        where = f"{file}: rule {rule!r}" if rule else file
        super().__init__(f"{where}: field {field!r}: {message}", field=field)
        self.file = file
        self.rule = rule
        self.rule_field = field
