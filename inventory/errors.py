"""Inventory errors: the shared domain errors, plus the import error that names line and field."""

from __future__ import annotations

from faultloop.errors import Conflict, Forbidden, InvalidInput, NotFound

__all__ = ["Conflict", "Forbidden", "ImportFailed", "InvalidInput", "NotFound"]


class ImportFailed(InvalidInput):
    """A bad inventory file; ``detail`` names the file, line and field. Nothing was imported."""
