"""Inventory files: YAML and CSV in, YAML and CSV out.

Parsing and validation happen before anything touches the database, and every error
names the file, the line and the field, so an operator can fix a 500-line import
without guessing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from faultloop import csvsafe
from inventory.errors import ImportFailed
from inventory.schemas import InventoryDoc

CSV_COLUMNS = [
    "hostname",
    "address",
    "site",
    "vendor",
    "platform",
    "device_type",
    "role",
    "tags",
    "parents",
    "snmp_version",
    "snmp_port",
    "snmp_community",
    "snmp_user",
    "snmp_auth_protocol",
    "snmp_auth_key",
    "snmp_priv_protocol",
    "snmp_priv_key",
    "snmp_allow_weak",
    "ssh_port",
    "ssh_username",
    "ssh_password",
    "ssh_host_key_policy",
]
_LIST_COLUMNS = ("tags", "parents")


class _LineLoader(yaml.SafeLoader):
    """Records the line of every mapping and of each of its keys. Refuses aliases (``*name``):
    copied out by ``_strip``, nested aliases grow exponentially (a "billion laughs" bomb of a
    few hundred bytes would take the CPU and memory of the import)."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            problem = "aliases (*name) are not accepted in an inventory file; write the value out"
            raise yaml.composer.ComposerError(None, None, problem, event.start_mark)
        return super().compose_node(parent, index)  # type: ignore[no-any-return]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        mapping["__lines__"] = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
        return mapping


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in ("__line__", "__lines__")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    line = data.get("__line__") if isinstance(data, dict) else None
    current = data
    for key in loc:
        if isinstance(current, dict):
            line = current.get("__lines__", {}).get(key, line)
            current = current.get(key)
        elif isinstance(current, list) and isinstance(key, int) and 0 <= key < len(current):
            current = current[key]
            if isinstance(current, dict):
                line = current.get("__line__", line)
        else:
            break
    return line


def _describe(loc: tuple[Any, ...], data: Any) -> str:
    """devices[3] (core9) field 'snmp.version'"""
    parts: list[str] = []
    fields: list[str] = []
    current = data
    for key in loc:
        if isinstance(key, int):
            name = (
                current[key].get("hostname") if isinstance(current, list) and isinstance(current[key], dict) else None
            )
            if fields:
                fields[-1] += f"[{key}]"
            else:
                parts[-1] += f"[{key}]" + (f" ({name})" if name else "")
            current = current[key] if isinstance(current, list) and key < len(current) else None
        else:
            (fields if parts else parts).append(str(key))
            current = current.get(key) if isinstance(current, dict) else None
    where = parts[0] if parts else "document"
    return f"{where} field {'.'.join(fields)!r}" if fields else where


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def parse_yaml(text: str, *, source: str) -> InventoryDoc:
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ImportFailed(f"{source} {where}: not valid YAML: {problem}") from None
    if raw is None:
        raise ImportFailed(f"{source}: the file is empty")
    if not isinstance(raw, dict):
        raise ImportFailed(f"{source} line 1: expected a mapping with sites, devices, links")
    try:
        return InventoryDoc.model_validate(_strip(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = _line_of(raw, loc)
        more = f" (and {exc.error_count() - 1} more error(s))" if exc.error_count() > 1 else ""
        raise ImportFailed(
            f"{source} line {line}: {_describe(loc, _strip(raw))}: {_message(err)}{more}",
            field=".".join(str(p) for p in loc),
        ) from None


def _csv_row_to_device(row: dict[str, str]) -> dict[str, Any]:
    value = {k: csvsafe.restore((v or "").strip()) for k, v in row.items() if k is not None}
    device: dict[str, Any] = {}
    for key in ("hostname", "address", "site", "vendor", "platform", "device_type", "role"):
        if value.get(key):
            device[key] = value[key]
    for key in _LIST_COLUMNS:
        device[key] = [p.strip() for p in re.split(r"[;|]", value.get(key, "")) if p.strip()]
    if value.get("snmp_version"):
        snmp: dict[str, Any] = {"version": value["snmp_version"]}
        for key in ("port", "community", "user", "auth_protocol", "auth_key", "priv_protocol", "priv_key"):
            if value.get(f"snmp_{key}"):
                snmp[key] = value[f"snmp_{key}"]
        if value.get("snmp_allow_weak", "").lower() in ("1", "true", "yes"):
            snmp["allow_weak"] = True
        device["snmp"] = snmp
    if value.get("ssh_username"):
        ssh: dict[str, Any] = {"username": value["ssh_username"]}
        for key in ("port", "password", "host_key_policy"):
            if value.get(f"ssh_{key}"):
                ssh[key] = value[f"ssh_{key}"]
        device["ssh"] = ssh
    return device


def _csv_column(loc: tuple[Any, ...]) -> str:
    names = [str(p) for p in loc if not isinstance(p, int)]
    if names and names[0] == "devices":
        names = names[1:]
    if len(names) >= 2 and names[0] in ("snmp", "ssh"):
        return f"{names[0]}_{names[1]}"
    return names[0] if names else "row"


def parse_csv(text: str, *, source: str) -> InventoryDoc:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ImportFailed(f"{source}: the file is empty")
    unknown = [c for c in reader.fieldnames if c not in CSV_COLUMNS]
    if unknown:
        raise ImportFailed(
            f"{source} line 1: unknown column(s) {', '.join(unknown)}; expected some of {', '.join(CSV_COLUMNS)}"
        )
    for required in ("hostname", "address", "role"):
        if required not in reader.fieldnames:
            raise ImportFailed(f"{source} line 1: missing required column {required!r}")
    devices, lines = [], []
    for row in reader:
        if None in row:
            raise ImportFailed(f"{source} line {reader.line_num}: more values than columns")
        devices.append(_csv_row_to_device(row))
        lines.append(reader.line_num)
    sites = sorted({d["site"] for d in devices if d.get("site")})
    try:
        return InventoryDoc.model_validate({"sites": [{"name": s} for s in sites], "devices": devices})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = lines[loc[1]] if len(loc) > 1 and loc[0] == "devices" and isinstance(loc[1], int) else 1
        raise ImportFailed(
            f"{source} line {line}: column {_csv_column(loc)!r}: {_message(err)}",
            field=".".join(str(p) for p in loc),
        ) from None


def parse_file(path: Path) -> InventoryDoc:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ImportFailed(f"{path}: not UTF-8 text") from None
    if path.suffix.lower() == ".csv":
        return parse_csv(text, source=str(path))
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_yaml(text, source=str(path))
    raise ImportFailed(f"{path}: unknown format; expected a .yaml, .yml or .csv file")


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def dump_csv(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for d in doc["devices"]:
        row = {k: d.get(k) or "" for k in ("hostname", "address", "site", "vendor", "platform", "device_type", "role")}
        row["tags"] = ";".join(d.get("tags", []))
        row["parents"] = ";".join(d.get("parents", []))
        for key, val in (d.get("snmp") or {}).items():
            row[f"snmp_{key}"] = val
        for key, val in (d.get("ssh") or {}).items():
            if f"ssh_{key}" in CSV_COLUMNS:
                row[f"ssh_{key}"] = val
        writer.writerow({k: csvsafe.neutralize(v) for k, v in row.items()})
    return out.getvalue()
