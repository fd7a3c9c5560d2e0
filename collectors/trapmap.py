"""The trap mapping file: notification OID -> event type, severity, managed object.

The package ships ``collectors/data/trap_map.yaml`` (standard notifications and common
vendor traps); ``FAULTLOOP_TRAP_MAP_FILE`` names a replacement. Each entry::

    - oid: 1.3.6.1.6.3.1.1.5.3         # snmpTrapOID.0 (v1 traps are translated per RFC 3584)
      event_type: linkDown
      severity: major                   # critical major minor warning indeterminate cleared
      object_varbind: 1.3.6.1.2.1.2.2.1.1  # optional: the varbind (OID prefix) naming the object
      object_is_ifindex: true           # optional: the value is an ifIndex -> "interface:<ifName>"
      object_prefix: "interface:"       # optional: text before the value (default "")
      probable_cause: lossOfSignal      # optional, X.733
      description: Interface went down  # optional

Loading validates every entry; an error names the file, the entry and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from faultloop.errors import ConfigError
from faultloop.events import SEVERITIES, Severity

DEFAULT_TRAP_MAP = Path(__file__).parent / "data" / "trap_map.yaml"
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]{0,9})){1,127}$")
_EVENT_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")
_FIELDS = {
    "oid",
    "event_type",
    "severity",
    "object_varbind",
    "object_is_ifindex",
    "object_prefix",
    "probable_cause",
    "description",
}


class MappingFileError(ConfigError):
    """A mapping or rules file is invalid; the message names the file, the entry and the field."""


@dataclass(frozen=True, slots=True)
class TrapRule:
    oid: str
    event_type: str
    severity: Severity
    object_varbind: str = ""
    object_is_ifindex: bool = False
    object_prefix: str = ""
    probable_cause: str = ""
    description: str = ""


def _oid_text(value: Any) -> str:
    text = str(value).strip().lstrip(".")
    if not _OID.match(text):
        raise ValueError("expected a numeric OID such as 1.3.6.1.6.3.1.1.5.3")
    return text


def load_yaml_list(path: Path, key: str) -> list[Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise MappingFileError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise MappingFileError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise MappingFileError(f"{path}: expected a mapping with a '{key}' list")
    return cast(list[Any], doc[key])


def load_trap_map(path: Path | None = None) -> dict[str, TrapRule]:
    path = path or DEFAULT_TRAP_MAP
    rules: dict[str, TrapRule] = {}
    for i, entry in enumerate(load_yaml_list(path, "traps"), start=1):
        where = f"{path}: traps entry {i}"
        if not isinstance(entry, dict):
            raise MappingFileError(f"{where}: expected a mapping")
        if "oid" in entry:
            where += f" ({entry['oid']})"
        unknown = sorted(set(entry) - _FIELDS)
        if unknown:
            raise MappingFileError(f"{where}: field '{unknown[0]}': unknown field; expected one of {sorted(_FIELDS)}")
        for required in ("oid", "event_type", "severity"):
            if entry.get(required) in (None, ""):
                raise MappingFileError(f"{where}: field '{required}': required")
        try:
            oid = _oid_text(entry["oid"])
        except ValueError as exc:
            raise MappingFileError(f"{where}: field 'oid': {exc}") from None
        if oid in rules:
            raise MappingFileError(f"{where}: field 'oid': {oid} is mapped twice")
        event_type = str(entry["event_type"])
        if not _EVENT_TYPE.match(event_type):
            raise MappingFileError(
                f"{where}: field 'event_type': expected a name like linkDown (letters, digits, _.:-)"
            )
        severity = entry["severity"]
        if severity not in SEVERITIES:
            raise MappingFileError(
                f"{where}: field 'severity': expected one of {', '.join(SEVERITIES)}, got {severity!r}"
            )
        object_varbind = ""
        if entry.get("object_varbind") not in (None, ""):
            try:
                object_varbind = _oid_text(entry["object_varbind"])
            except ValueError as exc:
                raise MappingFileError(f"{where}: field 'object_varbind': {exc}") from None
        is_ifindex = entry.get("object_is_ifindex", False)
        if not isinstance(is_ifindex, bool):
            raise MappingFileError(f"{where}: field 'object_is_ifindex': expected true or false")
        if is_ifindex and not object_varbind:
            raise MappingFileError(f"{where}: field 'object_is_ifindex': needs object_varbind")
        for text_field in ("object_prefix", "probable_cause", "description"):
            if not isinstance(entry.get(text_field, ""), str):
                raise MappingFileError(f"{where}: field '{text_field}': expected text")
        rules[oid] = TrapRule(
            oid=oid,
            event_type=event_type,
            severity=cast(Severity, severity),
            object_varbind=object_varbind,
            object_is_ifindex=is_ifindex,
            object_prefix=entry.get("object_prefix", "interface:" if is_ifindex else ""),
            probable_cause=entry.get("probable_cause", ""),
            description=entry.get("description", ""),
        )
    return rules
