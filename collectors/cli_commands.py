"""The per-platform CLI command table (``collectors/data/cli_commands.yaml``), as data."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from faultloop.errors import ConfigError

COMMANDS_FILE = Path(__file__).parent / "data" / "cli_commands.yaml"


class CommandTableError(ConfigError):
    """The CLI command table is invalid; the message names the file, the platform and the command."""


@dataclass(frozen=True)
class PlatformCommands:
    device_type: str
    backup_command: str
    privileged: bool
    commands: tuple[str, ...]


def parse_command_table(doc: Any, *, where: str = "cli_commands.yaml") -> dict[str, PlatformCommands]:
    if not isinstance(doc, dict) or not doc:
        raise CommandTableError(f"{where}: expected a mapping of device_type -> commands")
    table: dict[str, PlatformCommands] = {}
    for device_type, entry in doc.items():
        at = f"{where}: {device_type}"
        if not isinstance(entry, dict):
            raise CommandTableError(f"{at}: expected a mapping with backup, privileged, commands")
        unknown = set(entry) - {"backup", "privileged", "commands"}
        if unknown:
            raise CommandTableError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}")
        backup = entry.get("backup")
        if not isinstance(backup, str) or not backup.strip():
            raise CommandTableError(f"{at}: field 'backup': expected a command")
        privileged = entry.get("privileged", False)
        if not isinstance(privileged, bool):
            raise CommandTableError(f"{at}: field 'privileged': expected true or false")
        commands = entry.get("commands", [])
        if not isinstance(commands, list) or not all(isinstance(c, str) and c.strip() for c in commands):
            raise CommandTableError(f"{at}: field 'commands': expected a list of commands")
        if len(set(commands)) != len(commands):
            raise CommandTableError(f"{at}: field 'commands': a command is listed twice")
        for command in commands:
            if any(ch in command for ch in "\r\n\t") or "|" in command or len(command) > 200:
                raise CommandTableError(f"{at}: command {command!r}: one line, no pipes, at most 200 characters")
        table[str(device_type)] = PlatformCommands(str(device_type), backup.strip(), privileged, tuple(commands))
    return table


@cache
def command_table() -> dict[str, PlatformCommands]:
    return parse_command_table(yaml.safe_load(COMMANDS_FILE.read_text()), where=str(COMMANDS_FILE.name))
