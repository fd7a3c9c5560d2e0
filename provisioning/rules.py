"""Pure configuration logic: device-side error patterns, the planned diff, restore-from-backup.

IOS configuration is read as sections: a top-level line (``interface Gi0/1``, ``vlan 120``)
and the indented lines under it. Two uses:

- ``simulate``: apply rendered lines to the latest backup to show the planned change as a
  unified diff (a dry run that never touches the device);
- ``restore_commands``: the commands that bring a device's running configuration back to a
  backup, section by section (remove what was added, re-add what was removed). After a
  rollback the executor compares the device's configuration with the backup line by line.
"""

from __future__ import annotations

import difflib
import re

from collectors.backup import normalize_config

# Output that means the device refused a line. Informational lines ("% Access VLAN does not
# exist. Creating vlan 120") are not errors.
ERROR_PATTERNS: dict[str, str] = {
    "cisco_ios": (
        r"(% ?Invalid input|% ?Incomplete command|% ?Ambiguous command|% ?Unknown command|Bad mask|%Error|% ?Error)"
    ),
    "juniper_junos": r"(^|\n)\s*(error:|syntax error|unknown command|missing argument|invalid value)",
}


def device_errors(platform: str, output: str) -> list[str]:
    pattern = re.compile(ERROR_PATTERNS.get(platform, r"(% ?Invalid input|(^|\n)\s*error:)"), re.IGNORECASE)
    return [line.strip() for line in output.splitlines() if pattern.search(line)]


Section = tuple[str, list[str]]

# Lines a device writes itself as a consequence of another line; never sent on restore.
_IMPLIED = {"cisco_ios": (re.compile(r"^switchport mode access$"),)}
# Child keywords whose value replaces the previous one (for the simulated diff).
_SINGLE = ("description ", "switchport access vlan ", "ip address ", "speed ", "service-policy output ", "name ")


def sections(text: str) -> list[Section]:
    """Top-level lines with their indented children; comments ("!") and "end" dropped."""
    out: list[Section] = []
    for raw in normalize_config(text).splitlines():
        line = raw.rstrip()
        if not line.strip() or line.strip() == "!" or line.startswith("!") or line == "end":
            continue
        if line.startswith(" ") and out:
            out[-1][1].append(line.strip())
        else:
            out.append((line, []))
    return out


def _index(text: str) -> dict[str, list[str]]:
    return {head: children for head, children in sections(text)}


def simulate(backup_text: str, commands: list[str]) -> str:
    """The IOS running-config after ``commands`` were applied to ``backup_text`` (approximation for diffs)."""
    secs = sections(backup_text)
    index = {head: children for head, children in secs}
    current: list[str] | None = None
    for cmd in commands:
        if not cmd.startswith(" "):
            if cmd.startswith("no "):
                index.pop(cmd[3:], None)
                secs = [s for s in secs if s[0] != cmd[3:]]
                current = None
                continue
            if cmd not in index:
                index[cmd] = []
                secs.append((cmd, index[cmd]))
            current = index[cmd]
            continue
        if current is None:
            continue
        line = cmd.strip()
        if line.startswith("no "):
            body = line[3:]
            if body == "shutdown":
                current[:] = [c for c in current if c != "shutdown"]
            else:
                current[:] = [c for c in current if not c.startswith(body)]
                if body.startswith("switchport access vlan"):
                    current[:] = [c for c in current if c != "switchport mode access"]
            continue
        for single in _SINGLE:
            if line.startswith(single):
                current[:] = [c for c in current if not c.startswith(single)]
        if line not in current:
            current.append(line)
    out: list[str] = []
    for head, children in secs:
        out.append(head)
        out += [f" {c}" for c in children]
    return "\n".join(out) + "\n"


def planned_diff(hostname: str, backup_text: str | None, commands: list[str], platform: str) -> str:
    """Unified diff from the latest backup to the simulated result (IOS) or the command list (others)."""
    if backup_text is None:
        return "".join(f"+{c}\n" for c in commands)
    if platform != "cisco_ios":
        return "".join(f"+{c}\n" for c in commands)
    before = "\n".join(h + "".join(f"\n {c}" for c in ch) for h, ch in sections(backup_text)).splitlines()
    after = simulate(backup_text, commands).splitlines()
    lines = difflib.unified_diff(before, after, f"{hostname} (latest backup)", f"{hostname} (planned)", lineterm="")
    return "\n".join(lines) + "\n"


def changed_lines_only(diff: str) -> str:
    """The planned diff without its context lines (unchanged running config, which may hold secrets).

    Kept: the file and hunk headers, the lines added and removed, and ``#`` notes.
    """
    kept = [line for line in diff.splitlines() if line[:1] in ("-", "+", "@", "#")]
    return "\n".join(kept) + "\n" if kept else ""


def _negate(line: str) -> str:
    if line.startswith("no "):
        return line[3:]
    if line.startswith("switchport access vlan"):
        return "no switchport access vlan"
    return f"no {line}"


def restore_commands(platform: str, backup_text: str, current_text: str) -> list[str]:
    """IOS commands that turn ``current_text`` back into ``backup_text`` (only the sections that differ)."""
    if platform != "cisco_ios":
        raise ValueError(f"restore from backup is implemented for cisco_ios only, not {platform}")
    implied = _IMPLIED.get(platform, ())
    want = _index(backup_text)
    have = _index(current_text)
    commands: list[str] = []
    for head in have:
        if head not in want:
            commands.append(_negate(head))  # a section the order added (e.g. "vlan 120")
    for head, wanted in want.items():
        present = have.get(head)
        if present is None:
            commands.append(head)
            commands += [f" {c}" for c in wanted if not any(p.match(c) for p in implied)]
            continue
        if present == wanted:
            continue
        block: list[str] = []
        for line in present:
            if line not in wanted and not any(p.match(line) for p in implied):
                if line.startswith("no ") and any(w.startswith(line[3:]) for w in wanted):
                    continue  # "no ip address" replaced by the wanted "ip address ..."
                block.append(f" {_negate(line)}")
        for line in wanted:
            if line not in present and not any(p.match(line) for p in implied):
                block.append(f" {line}")
        if block:
            commands.append(head)
            commands += block
    return commands


def config_mismatch(expected: str, actual: str) -> list[str]:
    """Lines that differ between two configurations (normalized), as a unified diff; [] when equal."""
    return [
        line
        for line in difflib.unified_diff(
            normalize_config(expected).splitlines(),
            normalize_config(actual).splitlines(),
            "backup",
            "device",
            lineterm="",
        )
    ]
