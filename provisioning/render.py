"""The service catalog: service types as files, validated at load, rendered in a sandbox.

    provisioning/catalog/<service_type>/
        schema.yaml            fields (typed, constrained) and which of them are resources
        <platform>.j2          configuration lines that activate the service
        <platform>.remove.j2   the inverse: lines that remove it
        checks.yaml            post-checks: show commands with expected regexes, SNMP interface state

Inputs pass two gates before any template sees them: a character gate that refuses CR/LF,
control characters and the markers of configuration or template injection (``;``, ``|``,
``{{``, ``{%``, backticks, ``$(``), then the typed schema (each field type has an
allow-list pattern). Templates run in Jinja2's SandboxedEnvironment with StrictUndefined,
so an attribute walk such as ``''.__class__.__mro__`` raises SecurityError and a missing
variable raises instead of rendering an empty string.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from faultloop.errors import ConfigError, InvalidInput

PACKAGED_CATALOG = Path(__file__).parent / "catalog"
PLATFORMS = ("cisco_ios", "juniper_junos")
FIELD_TYPES = ("interface", "vlan", "text", "name", "enum", "int")

# Anything that could end a line, start a second command, or reach the template engine.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029]")
_INJECTION = ("{{", "}}", "{%", "%}", "{#", "#}", ";", "|", "`", "$(", "\\", '"', "'", "<", ">")

_PATTERNS: dict[str, tuple[str, str]] = {
    "interface": (
        r"^[A-Za-z][A-Za-z-]{0,30}[0-9]+(/[0-9]+){0,3}(\.[0-9]+)?$",
        "an interface name such as GigabitEthernet0/1",
    ),
    "text": (r"^[A-Za-z0-9][A-Za-z0-9 _.,:/()#@+=-]*$", "letters, digits, spaces and _ . , : / ( ) # @ + = -"),
    "name": (r"^[A-Za-z0-9][A-Za-z0-9_-]*$", "letters, digits, _ and -"),
}


class CatalogError(ConfigError):
    """A catalog folder that does not load; the message names the file and the problem."""


def reject_unsafe(value: Any, path: str) -> None:
    """Walk raw input; raise InvalidInput naming the first unsafe string (before any schema or template)."""
    if isinstance(value, dict):
        for key, item in value.items():
            reject_unsafe(str(key), f"{path}.{key}" if path else str(key))
            reject_unsafe(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            reject_unsafe(item, f"{path}[{i}]")
    elif isinstance(value, str):
        if _CONTROL.search(value):
            raise InvalidInput(f"{path}: control characters (CR, LF, tab, ...) are not allowed", field=path)
        for marker in _INJECTION:
            if marker in value:
                raise InvalidInput(f"{path}: {marker!r} is not allowed in a configuration value", field=path)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    required: bool
    pool: bool = False
    choices: tuple[Any, ...] = ()
    max_length: int = 80
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class ShowCheck:
    command: str
    expect: tuple[str, ...]


@dataclass(frozen=True)
class SnmpCheck:
    interface: str
    if_alias: str | None = None
    oper_status: str | None = None
    admin_status: str | None = None


@dataclass
class ServiceType:
    name: str
    description: str
    fields: dict[str, FieldSpec]
    resources: tuple[str, ...]
    templates: dict[str, Any]  # platform -> jinja2 Template
    remove_templates: dict[str, Any]
    show_checks: dict[str, list[dict[str, Any]]]  # platform -> [{command, expect}] (template strings)
    snmp_checks: list[dict[str, str]]
    model: type[BaseModel] = field(repr=False, default=BaseModel)
    sla_class: str | None = None  # the ticket policy's class (gold, silver, ...) of services of this type
    source: str = ""  # the schema file, for errors found after loading

    @property
    def platforms(self) -> list[str]:
        return sorted(self.templates)

    @property
    def pool_field(self) -> str | None:
        return next((f.name for f in self.fields.values() if f.pool), None)

    def validate_params(self, raw: dict[str, Any], *, path: str = "params") -> dict[str, Any]:
        """Gate 1 (characters) then gate 2 (typed schema); returns clean values."""
        if not isinstance(raw, dict):
            raise InvalidInput(f"{path}: expected an object", field=path)
        reject_unsafe(raw, path)
        try:
            return dict(self.model.model_validate(raw).model_dump())
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            name = f"{path}.{where}" if where else path
            raise InvalidInput(f"{name}: {err['msg']}", field=name) from None

    def render(self, platform: str, params: dict[str, Any], *, remove: bool = False) -> list[str]:
        templates = self.remove_templates if remove else self.templates
        template = templates.get(platform)
        if template is None:
            raise InvalidInput(
                f"service type {self.name!r} has no template for platform {platform!r} "
                f"(has: {', '.join(self.platforms)})",
                field="device",
            )
        text = template.render(**params)
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        for line in lines:  # belt and braces: a rendered line never carries a control character
            if _CONTROL.search(line):
                raise InvalidInput(f"rendered line holds a control character: {line!r}", field="params")
        return lines

    def checks(self, platform: str, params: dict[str, Any]) -> tuple[list[ShowCheck], list[SnmpCheck]]:
        env = _CHECKS
        escaped = {k: re.escape(str(v)) for k, v in params.items()}
        shows = [
            ShowCheck(
                command=env.from_string(c["command"]).render(**params),
                expect=tuple(env.from_string(e).render(**escaped) for e in c.get("expect", [])),
            )
            for c in self.show_checks.get(platform, [])
        ]
        snmps = [
            SnmpCheck(**{k: env.from_string(str(v)).render(**params) for k, v in c.items()}) for c in self.snmp_checks
        ]
        return shows, snmps


def _env() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class _CheckTemplates:
    """Check strings compiled once per process (an order renders them for every device)."""

    def __init__(self) -> None:
        self.env = _env()

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one module-level instance, lives as long as the process
    def from_string(self, source: str) -> Any:
        return self.env.from_string(source)


_CHECKS = _CheckTemplates()


def sandbox_render(source: str, **params: Any) -> str:
    """Render a template string in the catalog's sandbox (used by tests and catalog validation)."""
    return _env().from_string(source).render(**params)


def _annotation(spec: FieldSpec) -> Any:
    if spec.type == "vlan":
        return Annotated[int, Field(strict=True, ge=spec.minimum or 2, le=spec.maximum or 4094)]
    if spec.type == "int":
        return Annotated[int, Field(strict=True, ge=spec.minimum, le=spec.maximum)]
    if spec.type == "enum":
        return Literal[spec.choices]  # type: ignore[valid-type]
    pattern, _ = _PATTERNS[spec.type]
    return Annotated[str, Field(pattern=pattern, min_length=1, max_length=spec.max_length)]


def _sample(spec: FieldSpec) -> Any:
    return {
        "interface": "GigabitEthernet0/1",
        "vlan": 100,
        "text": "sample",
        "name": "sample",
        "int": spec.minimum or 1,
    }.get(spec.type, spec.choices[0] if spec.choices else None)


def _load_type(folder: Path) -> ServiceType:
    name = folder.name
    where = f"catalog {folder}"
    try:
        schema = yaml.safe_load((folder / "schema.yaml").read_text())
        checks = yaml.safe_load((folder / "checks.yaml").read_text()) if (folder / "checks.yaml").exists() else {}
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{where}: {exc}") from None
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), dict) or not schema["fields"]:
        raise CatalogError(f"{where}/schema.yaml: expected a mapping with a non-empty 'fields' mapping")
    specs: dict[str, FieldSpec] = {}
    for fname, raw in schema["fields"].items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(fname)) or not isinstance(raw, dict):
            raise CatalogError(f"{where}/schema.yaml: field {fname!r}: expected a snake_case name and a mapping")
        ftype = raw.get("type")
        if ftype not in FIELD_TYPES:
            raise CatalogError(f"{where}/schema.yaml: field {fname}: type must be one of {', '.join(FIELD_TYPES)}")
        if ftype == "enum" and not raw.get("choices"):
            raise CatalogError(f"{where}/schema.yaml: field {fname}: enum needs choices")
        unknown = set(raw) - {"type", "required", "pool", "choices", "max_length", "min", "max"}
        if unknown:
            raise CatalogError(f"{where}/schema.yaml: field {fname}: unknown keys {sorted(unknown)}")
        specs[fname] = FieldSpec(
            name=fname,
            type=ftype,
            required=bool(raw.get("required", False)),
            pool=bool(raw.get("pool", False)),
            choices=tuple(raw.get("choices") or ()),
            max_length=int(raw.get("max_length", 80)),
            minimum=raw.get("min"),
            maximum=raw.get("max"),
        )
    model_fields: dict[str, Any] = {
        s.name: (_annotation(s), ...) if s.required else (_annotation(s) | None, None) for s in specs.values()
    }
    model = create_model(f"{name}_params", __config__=ConfigDict(extra="forbid"), **model_fields)  # type: ignore[call-overload]
    env = _env()
    templates: dict[str, Any] = {}
    removes: dict[str, Any] = {}
    for platform in PLATFORMS:
        for suffix, target in ((".j2", templates), (".remove.j2", removes)):
            path = folder / f"{platform}{suffix}"
            if not path.exists():
                continue
            source = path.read_text()
            try:
                ast = env.parse(source)
            except TemplateError as exc:
                raise CatalogError(f"{where}/{path.name}: {exc}") from None
            unknown_vars = meta.find_undeclared_variables(ast) - set(specs)
            if unknown_vars:
                raise CatalogError(f"{where}/{path.name}: uses undeclared fields {sorted(unknown_vars)}")
            target[platform] = env.from_string(source)
        if (platform in templates) != (platform in removes):
            raise CatalogError(f"{where}: {platform}.j2 and {platform}.remove.j2 must both exist")
    if not templates:
        raise CatalogError(f"{where}: no <platform>.j2 template (platforms: {', '.join(PLATFORMS)})")
    resources = tuple(schema.get("resources") or ())
    if not set(resources) <= set(specs):
        raise CatalogError(f"{where}/schema.yaml: resources name unknown fields")
    if not isinstance(checks, dict):
        raise CatalogError(f"{where}/checks.yaml: expected a mapping")
    sla_class = schema.get("sla_class")
    if sla_class is not None and (
        not isinstance(sla_class, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", sla_class)
    ):
        raise CatalogError(
            f"{folder / 'schema.yaml'}: service type {name}: sla_class: expected a class name such as gold"
        )
    st = ServiceType(
        name=name,
        description=str(schema.get("description", "")),
        fields=specs,
        resources=resources,
        templates=templates,
        remove_templates=removes,
        show_checks=checks.get("show") or {},
        snmp_checks=checks.get("snmp") or [],
        model=model,
        sla_class=sla_class,
        source=str(folder / "schema.yaml"),
    )
    # Render everything once with sample values: a template or check that fails here fails at load.
    sample = {s.name: _sample(s) for s in specs.values()}
    try:
        for platform in st.platforms:
            st.render(platform, sample)
            st.render(platform, sample, remove=True)
            shows, snmps = st.checks(platform, sample)
            for check in shows:
                for pattern in check.expect:
                    re.compile(pattern)
    except (TemplateError, TypeError, re.error, InvalidInput) as exc:
        raise CatalogError(f"{where}: does not render with sample values: {exc}") from None
    return st


def load_catalog(folder: Path | None = None) -> dict[str, ServiceType]:
    root = folder or PACKAGED_CATALOG
    if not root.is_dir():
        raise CatalogError(f"catalog folder {root} does not exist")
    types = {d.name: _load_type(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith((".", "_"))}
    if not types:
        raise CatalogError(f"catalog folder {root} holds no service type")
    return types


def check_sla_classes(types: dict[str, ServiceType], defined: Iterable[str]) -> None:
    """Every ``sla_class`` the catalog names must be one the ticket policy defines (CatalogError naming
    the file, the service type and the field otherwise)."""
    known = sorted(set(defined))
    for st in types.values():
        if st.sla_class is not None and st.sla_class not in known:
            raise CatalogError(
                f"{st.source}: service type {st.name}: sla_class: {st.sla_class!r} is not defined by the ticket "
                f"policy (defined: {', '.join(known) or 'none'})"
            )


_cache: dict[Path | None, dict[str, ServiceType]] = {}


def catalog(folder: Path | None = None) -> dict[str, ServiceType]:
    if folder not in _cache:
        _cache[folder] = load_catalog(folder)
    return _cache[folder]


def service_type(name: str, folder: Path | None = None) -> ServiceType:
    types = catalog(folder)
    if name not in types:
        raise InvalidInput(
            f"service_type: expected one of {', '.join(sorted(types))}, got {name!r}", field="service_type"
        )
    return types[name]
