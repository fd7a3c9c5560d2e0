"""Inventory rules: pure functions, no I/O (the poller applies them to a snapshot too)."""

from __future__ import annotations

from collections.abc import Container


def display_name(name: str, if_index: int, taken: Container[str]) -> str:
    """The name a port shows: its ifName, or ``<ifName>#<ifIndex>`` when another port of the device
    already shows that name (both cut to the 100 characters the column holds)."""
    plain = name[:100]
    if plain not in taken:
        return plain
    suffix = f"#{if_index}"
    candidate = name[: 100 - len(suffix)] + suffix
    return candidate if candidate not in taken else f"ifIndex{if_index}"
