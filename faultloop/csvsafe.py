"""CSV cells a spreadsheet will not run as formulas (CSV injection, OWASP).

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
to Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``@SUM(...)``, DDE). Device-supplied
text (sysDescr, ifAlias, syslog, trap varbinds) and ticket notes reach the CSV exports, so
every exported cell that begins with one of them gets a leading apostrophe, which the
spreadsheet shows as text; ``restore`` is the inverse for files read back (inventory import)."""

from __future__ import annotations

from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> Any:
    """``value`` with a leading apostrophe when, as text, it would start a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def restore(value: str) -> str:
    """The inverse of ``neutralize`` for a cell read from a CSV file this program wrote."""
    if value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value
