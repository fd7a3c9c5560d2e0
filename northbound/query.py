"""The TMF630 query conventions every TM Forum API here shares: ``fields=``, ``offset``, ``limit``
and attribute filters, parsed against what one resource declares, and evaluated on resource
dicts (a hub subscription's ``query`` is the same language over an event envelope).

Filters (TMF630 part 6, the "simple" form):
- ``attr=value``: equal; ``attr=v1,v2``: any of the values;
- ``attr.eq=``, ``attr.ne=``, ``attr.gt=``, ``attr.gte=``, ``attr.lt=``, ``attr.lte=``;
- ``attr`` is a dotted path into the resource (``alarmedObject.id``, ``event.alarm.state``).

Everything a client sends is checked: an unknown field or attribute, an unknown operator, a value
that is not of the attribute's type, a bad offset or limit is a ``TmfQueryError`` (400) that names
it. Nothing here touches a database: a resource module turns the parsed ``Filter``s it can into SQL
and evaluates the rest with ``matches``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from faultloop.errors import DomainError

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte")
RESERVED = frozenset({"fields", "offset", "limit", "sort", "depth", "expand"})
MAX_FILTERS = 20
MAX_VALUES = 100  # values in one comma list
MAX_VALUE_CHARS = 500


class TmfQueryError(DomainError):
    """400 in the TMF error shape (``api/problems.py`` renders ``code``, ``reason``, ``message``,
    ``status`` on every /tmf-api/ route)."""

    status = 400
    title = "Bad request"


class Kind(StrEnum):
    text = "text"
    integer = "integer"
    boolean = "boolean"
    datetime = "datetime"


@dataclass(frozen=True)
class Attribute:
    """One filterable attribute: its kind and, for an enumeration, its values."""

    kind: Kind = Kind.text
    values: frozenset[str] | None = None  # the allowed values of an enumerated text attribute


@dataclass(frozen=True)
class Filter:
    path: str  # dotted, as the client wrote it: "alarmedObject.id"
    op: str  # one of OPERATORS
    values: tuple[Any, ...]  # parsed to the attribute's kind; several only for eq / ne


@dataclass(frozen=True)
class ListQuery:
    fields: frozenset[str] | None  # None: every field
    offset: int
    limit: int
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class Resource:
    """What a resource accepts in a query: its top-level field names (``fields=``) and its
    filterable attributes by dotted path."""

    name: str  # "alarm", "troubleTicket": named in errors
    fields: frozenset[str]
    filters: Mapping[str, Attribute]
    always: frozenset[str] = frozenset({"id", "href", "@type"})  # in every projection


def parse_datetime(raw: str, field: str, *, label: str | None = None) -> datetime:
    """``raw`` as an aware date-time (ISO 8601, ``Z`` or an offset); else a ``TmfQueryError`` on
    ``field`` whose message starts with ``label`` (default: ``field``)."""
    where = field if label is None else label
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise TmfQueryError(f"{where}: expected an ISO 8601 date-time", field=field) from None
    if value.tzinfo is None:
        raise TmfQueryError(f"{where}: expected a date-time with a time zone (Z or +hh:mm)", field=field)
    return value


def _parse_value(path: str, attribute: Attribute, raw: str) -> Any:
    if len(raw) > MAX_VALUE_CHARS:
        raise TmfQueryError(f"filter {path}: value longer than {MAX_VALUE_CHARS} characters", field=path)
    if attribute.kind is Kind.integer:
        try:
            return int(raw)
        except ValueError:
            raise TmfQueryError(f"filter {path}: expected an integer", field=path) from None
    if attribute.kind is Kind.boolean:
        if raw not in ("true", "false"):
            raise TmfQueryError(f"filter {path}: expected true or false", field=path)
        return raw == "true"
    if attribute.kind is Kind.datetime:
        return parse_datetime(raw, path, label=f"filter {path}")
    if attribute.values is not None and raw not in attribute.values:
        raise TmfQueryError(f"filter {path}: expected one of {', '.join(sorted(attribute.values))}", field=path)
    return raw


def parse_filters(params: Iterable[tuple[str, str]], filterable: Mapping[str, Attribute], *,
                  what: str) -> tuple[Filter, ...]:  # fmt: skip
    """The filters among ``params`` (reserved names skipped); ``what`` names the resource in errors."""
    out: list[Filter] = []
    for name, raw in params:
        if name in RESERVED:
            continue
        path, op = name, "eq"
        head, dot, tail = name.rpartition(".")
        if dot and tail in OPERATORS:
            path, op = head, tail
        attribute = filterable.get(path)
        if attribute is None:
            known = ", ".join(sorted(filterable)) or "none"
            raise TmfQueryError(f"unknown filter attribute {path!r} for {what}; filterable: {known}", field=path)
        parts = raw.split(",") if op in ("eq", "ne") else [raw]
        if len(parts) > MAX_VALUES:
            raise TmfQueryError(f"filter {path}: more than {MAX_VALUES} values", field=path)
        if op in ("gt", "gte", "lt", "lte") and attribute.kind in (Kind.boolean,):
            raise TmfQueryError(f"filter {path}: operator {op} does not apply to a boolean", field=path)
        out.append(Filter(path, op, tuple(_parse_value(path, attribute, part) for part in parts)))
        if len(out) > MAX_FILTERS:
            raise TmfQueryError(f"more than {MAX_FILTERS} filters", field=name)
    return tuple(out)


def _one(params: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    if len(values) > 1:
        raise TmfQueryError(f"{name} given {len(values)} times; give it once", field=name)
    return values[0] if values else None


def _bounded_int(params: Sequence[tuple[str, str]], name: str, default: int, low: int, high: int) -> int:
    raw = _one(params, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise TmfQueryError(f"{name}: expected an integer from {low} to {high}", field=name) from None
    if not low <= value <= high:
        raise TmfQueryError(f"{name}: expected an integer from {low} to {high}", field=name)
    return value


def parse_list_query(params: Sequence[tuple[str, str]], resource: Resource, *, page_max: int,
                     offset_max: int = 10**9) -> ListQuery:  # fmt: skip
    """A list request's query (``request.query_params.multi_items()``) checked against ``resource``."""
    for name in ("sort", "depth", "expand"):
        if _one(params, name) is not None:
            raise TmfQueryError(f"{name} is not supported on {resource.name}", field=name)
    fields: frozenset[str] | None = None
    raw_fields = _one(params, "fields")
    if raw_fields is not None:
        names = [n.strip() for n in raw_fields.split(",") if n.strip()]
        if not names:
            raise TmfQueryError("fields: expected a comma-separated list of field names", field="fields")
        unknown = sorted(set(names) - resource.fields - resource.always)
        if unknown:
            raise TmfQueryError(f"fields: unknown field(s) of {resource.name}: {', '.join(unknown)}", field="fields")
        fields = frozenset(names)
    return ListQuery(
        fields=fields,
        offset=_bounded_int(params, "offset", 0, 0, offset_max),
        limit=_bounded_int(params, "limit", min(100, page_max), 1, page_max),
        filters=parse_filters(params, resource.filters, what=resource.name),
    )


def project(resource: Mapping[str, Any], fields: frozenset[str] | None, *,
            always: frozenset[str] = frozenset({"id", "href", "@type"})) -> dict[str, Any]:  # fmt: skip
    """``resource`` cut to ``fields`` (and the attributes every answer carries); all when None."""
    if fields is None:
        return dict(resource)
    keep = fields | always
    return {k: v for k, v in resource.items() if k in keep}


def _values_at(doc: Any, path: Sequence[str]) -> list[Any]:
    """Every value at ``path`` in ``doc``; a list on the way fans out (``relatedEntity.id``)."""
    if not path:
        return [item for item in doc] if isinstance(doc, list) else [doc]
    if isinstance(doc, list):
        return [v for item in doc for v in _values_at(item, path)]
    if isinstance(doc, Mapping) and path[0] in doc:
        return _values_at(doc[path[0]], path[1:])
    return []


def _comparable(value: Any, wanted: Any) -> Any:
    if isinstance(wanted, datetime) and isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(wanted, bool):
        return value if isinstance(value, bool) else None
    if isinstance(wanted, int) and not isinstance(value, bool):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return value if isinstance(value, str) else (None if value is None else str(value))


def _holds(value: Any, f: Filter) -> bool:
    if f.op == "eq":
        return any(_comparable(value, w) == w for w in f.values)
    if f.op == "ne":
        return all(_comparable(value, w) != w for w in f.values)
    wanted = f.values[0]
    got = _comparable(value, wanted)
    if got is None:
        return False
    try:
        if f.op == "gt":
            return bool(got > wanted)
        if f.op == "gte":
            return bool(got >= wanted)
        if f.op == "lt":
            return bool(got < wanted)
        return bool(got <= wanted)
    except TypeError:  # an aware and a naive date-time, say: no match rather than a 500
        return False


def matches(doc: Mapping[str, Any], filters: Iterable[Filter]) -> bool:
    """True when ``doc`` satisfies every filter (a filter over a list holds when one item does;
    ``ne`` holds when no item equals)."""
    for f in filters:
        values = _values_at(doc, f.path.split("."))
        if f.op == "ne":
            if not all(_holds(v, f) for v in values):
                return False
        elif not any(_holds(v, f) for v in values):
            return False
    return True


def parse_hub_query(query: str, filterable: Mapping[str, Attribute], *, what: str) -> tuple[Filter, ...]:
    """A hub subscription's ``query`` (``eventType=AlarmCreateEvent&event.alarm.state=raised``),
    checked like a list query's filters; "" subscribes to every event of the API."""
    if len(query) > 2000:
        raise TmfQueryError("query longer than 2000 characters", field="query")
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise TmfQueryError("query: expected name=value pairs joined by &", field="query") from None
    return parse_filters(params, filterable, what=what)
