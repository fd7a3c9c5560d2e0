"""Validate TMF documents against the schemas in tests/data/tmf/ (written from the published v4
specifications: field names, types, enums, required fields).

``validate(doc, "Alarm")`` loads ``tests/data/tmf/Alarm.schema.json``; a schema may ``$ref`` another
by its file name (``"$ref": "AlarmRef.schema.json"``) and the registry resolves it. An error names
the path in the document and what the schema wanted.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "tmf"


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        contents = json.loads(path.read_text())
        resources.append((path.name, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def errors(doc: Any, name: str) -> list[str]:
    found = sorted(_validator(name).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in found]


def validate(doc: Any, name: str) -> None:
    """Raise AssertionError listing every place ``doc`` breaks the ``name`` schema."""
    problems = errors(doc, name)
    assert not problems, f"{name} conformance:\n" + "\n".join(problems[:20])


def validate_all(docs: list[Any], name: str) -> None:
    for doc in docs:
        validate(doc, name)
