"""Inventory input and output shapes. Secrets come in as SecretStr and never go out."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.json_schema import JsonDict

ROLES = ("core", "distribution", "access", "cpe", "server", "other")
AUTH_PROTOCOLS = ("SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
PRIV_PROTOCOLS = ("AES-128", "AES-192", "AES-256")
WEAK_AUTH = ("MD5",)
WEAK_PRIV = ("DES",)
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,253}[A-Za-z0-9])?$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@lru_cache(maxsize=1)
def netmiko_device_types() -> frozenset[str]:
    from netmiko.ssh_dispatcher import CLASS_MAPPER

    return frozenset(CLASS_MAPPER)


def _no_control(value: str, what: str) -> str:
    if CONTROL_RE.search(value):
        raise ValueError(f"{what} must not contain control characters (CR, LF, ...)")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)


class SnmpIn(Strict):
    version: Literal["v1", "v2c", "v3"]
    port: int = Field(161, ge=1, le=65535)
    community: SecretStr | None = None
    user: str | None = Field(None, min_length=1, max_length=32)
    auth_protocol: str | None = None
    auth_key: SecretStr | None = None
    priv_protocol: str | None = None
    priv_key: SecretStr | None = None
    allow_weak: bool = Field(False, description="Permit MD5 / DES for old devices that know nothing else.")

    @model_validator(mode="after")
    def _consistent(self) -> SnmpIn:
        if self.version in ("v1", "v2c"):
            if self.community is None or not self.community.get_secret_value():
                raise ValueError(f"community is required for SNMP {self.version}")
            _no_control(self.community.get_secret_value(), "community")
            if len(self.community.get_secret_value()) > 64:
                raise ValueError("community: expected at most 64 characters")
            if self.user or self.auth_key or self.priv_key:
                raise ValueError(f"user/auth_key/priv_key are for v3, not {self.version}")
            return self
        if not self.user:
            raise ValueError("user is required for SNMP v3")
        if self.community is not None:
            raise ValueError("community is for v1/v2c, not v3")
        allowed_auth = AUTH_PROTOCOLS + (WEAK_AUTH if self.allow_weak else ())
        allowed_priv = PRIV_PROTOCOLS + (WEAK_PRIV if self.allow_weak else ())
        if self.auth_protocol is not None and self.auth_protocol not in allowed_auth:
            hint = " (MD5 needs allow_weak: true)" if self.auth_protocol in WEAK_AUTH else ""
            raise ValueError(f"auth_protocol: expected one of {', '.join(allowed_auth)}{hint}")
        if self.priv_protocol is not None and self.priv_protocol not in allowed_priv:
            hint = " (DES needs allow_weak: true)" if self.priv_protocol in WEAK_PRIV else ""
            raise ValueError(f"priv_protocol: expected one of {', '.join(allowed_priv)}{hint}")
        if self.auth_protocol and (not self.auth_key or len(self.auth_key.get_secret_value()) < 8):
            raise ValueError("auth_key: expected at least 8 characters when auth_protocol is set")
        if self.priv_protocol and not self.auth_protocol:
            raise ValueError("priv_protocol needs auth_protocol (authPriv)")
        if self.priv_protocol and (not self.priv_key or len(self.priv_key.get_secret_value()) < 8):
            raise ValueError("priv_key: expected at least 8 characters when priv_protocol is set")
        return self


class SshIn(Strict):
    port: int = Field(22, ge=1, le=65535)
    username: str = Field(..., min_length=1, max_length=64)
    password: SecretStr | None = None
    private_key: SecretStr | None = None
    host_key_policy: Literal["strict", "tofu", "off"] = "tofu"

    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        return _no_control(v, "username")


class InterfaceIn(Strict):
    name: str = Field(..., min_length=1, max_length=100)
    if_index: int | None = Field(None, ge=1, le=2**31 - 1)
    description: str = Field("", max_length=255)
    speed_mbps: int | None = Field(None, ge=0, le=10_000_000)

    @field_validator("name", "description")
    @classmethod
    def _text(cls, v: str) -> str:
        return _no_control(v, "value")


class InterfaceUpdate(Strict):
    if_index: int | None = Field(None, ge=1, le=2**31 - 1)
    description: str | None = Field(None, max_length=255)
    speed_mbps: int | None = Field(None, ge=0, le=10_000_000)

    @field_validator("description")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        return None if v is None else _no_control(v, "description")


def _check_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"expected an IPv4 or IPv6 address, got {value!r}") from None


def _check_hostname(value: str) -> str:
    if not HOSTNAME_RE.match(value):
        raise ValueError("expected letters, digits, '.', '_', '-' (1-255 characters)")
    return value


def _check_device_type(value: str) -> str:
    if value and value not in netmiko_device_types():
        raise ValueError(f"unknown netmiko device_type {value!r} (e.g. cisco_ios, juniper_junos)")
    return value


def _check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not tag or len(tag) > 50 or CONTROL_RE.search(tag):
            raise ValueError(f"tag {tag!r}: expected 1-50 printable characters")
    return sorted(set(tags))


# What the validators below check, said in the OpenAPI document too (a client or fuzzer reads it)
HOSTNAME_SCHEMA: JsonDict = {"pattern": HOSTNAME_RE.pattern, "minLength": 1, "maxLength": 255}
ADDRESS_SCHEMA: JsonDict = {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}
TAG_SCHEMA: JsonDict = {"items": {"type": "string", "minLength": 1, "maxLength": 50, "pattern": r"^[^\x00-\x1f\x7f]*$"}}


class DeviceIn(Strict):
    hostname: str = Field(json_schema_extra=HOSTNAME_SCHEMA)
    address: str = Field(json_schema_extra=ADDRESS_SCHEMA)
    site: str | None = None
    vendor: str = Field("", max_length=50)
    platform: str = Field("", max_length=50)
    device_type: str = Field("", max_length=50)
    role: Literal["core", "distribution", "access", "cpe", "server", "other"]
    tags: list[str] = Field(default_factory=list, json_schema_extra=TAG_SCHEMA)
    collector_group: str = Field("default", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    parents: list[str] = Field(default_factory=list)
    snmp: SnmpIn | None = None
    ssh: SshIn | None = None
    interfaces: list[InterfaceIn] = Field(default_factory=list)

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str) -> str:
        return _check_hostname(v)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return _check_address(v)

    @field_validator("device_type")
    @classmethod
    def _device_type(cls, v: str) -> str:
        return _check_device_type(v)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        return _check_tags(v)

    @model_validator(mode="after")
    def _unique_interfaces(self) -> DeviceIn:
        seen: set[str] = set()
        indexes: set[int] = set()
        for i, itf in enumerate(self.interfaces):
            if itf.name in seen:
                raise ValueError(f"interfaces[{i}]: duplicate interface name {itf.name!r}")
            if itf.if_index is not None and itf.if_index in indexes:
                raise ValueError(f"interfaces[{i}]: duplicate if_index {itf.if_index} (one interface per ifIndex)")
            seen.add(itf.name)
            if itf.if_index is not None:
                indexes.add(itf.if_index)
        if self.hostname in self.parents:
            raise ValueError("parents: a device cannot depend on itself")
        return self


class DeviceUpdate(Strict):
    address: str | None = None
    site: str | None = None
    vendor: str | None = Field(None, max_length=50)
    platform: str | None = Field(None, max_length=50)
    device_type: str | None = Field(None, max_length=50)
    role: Literal["core", "distribution", "access", "cpe", "server", "other"] | None = None
    tags: list[str] | None = None
    collector_group: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    parents: list[str] | None = None
    snmp: SnmpIn | None = None
    ssh: SshIn | None = None
    keep_credentials: bool = Field(
        False,
        description="When the address changes: keep the stored SNMP/SSH secrets instead of re-entering them "
        "(admin only, audited)",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        return None if v is None else _check_address(v)

    @field_validator("device_type")
    @classmethod
    def _device_type(cls, v: str | None) -> str | None:
        return None if v is None else _check_device_type(v)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_tags(v)


class SiteIn(Strict):
    name: str = Field(..., min_length=1, max_length=100)
    description: str = Field("", max_length=500)

    @field_validator("name", "description")
    @classmethod
    def _text(cls, v: str) -> str:
        return _no_control(v, "value")


class LinkIn(Strict):
    """Both ends name a device of the inventory and one of its interfaces (422 naming the end otherwise)."""

    a_device: str = Field(json_schema_extra={"minLength": 1, "maxLength": 255}, examples=["core1"])
    a_interface: str = Field(json_schema_extra={"minLength": 1, "maxLength": 100}, examples=["GigabitEthernet0/1"])
    b_device: str = Field(json_schema_extra={"minLength": 1, "maxLength": 255}, examples=["dist1"])
    b_interface: str = Field(json_schema_extra={"minLength": 1, "maxLength": 100}, examples=["GigabitEthernet0/1"])
    source: Literal["manual", "discovered"] = "manual"


class InventoryDoc(Strict):
    """The YAML document `faultloop inventory import` reads and `lab up` writes."""

    sites: list[SiteIn] = Field(default_factory=list)
    devices: list[DeviceIn] = Field(default_factory=list)
    links: list[LinkIn] = Field(default_factory=list)


# ---- output shapes ---------------------------------------------------------------


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SiteOut(Out):
    id: int
    name: str
    description: str


class InterfaceOut(Out):
    id: int
    device_id: int
    name: str
    if_index: int | None
    description: str
    alias: str  # the device's ifAlias at the last poll
    speed_mbps: int | None
    admin_status: str
    oper_status: str


class SnmpOut(BaseModel):
    version: str
    port: int
    user: str | None
    auth_protocol: str | None
    priv_protocol: str | None
    has_community: bool
    has_auth_key: bool
    has_priv_key: bool


class SshOut(BaseModel):
    port: int
    username: str | None
    host_key_policy: str
    has_password: bool
    has_private_key: bool


class DeviceOut(BaseModel):
    id: int
    hostname: str
    address: str
    site: str | None
    vendor: str
    platform: str
    device_type: str
    role: str
    tags: list[str]
    collector_group: str = "default"
    parents: list[str]
    snmp: SnmpOut | None
    ssh: SshOut | None


class LinkEnd(BaseModel):
    device: str
    interface: str
    interface_id: int


class LinkOut(BaseModel):
    id: int
    a: LinkEnd
    b: LinkEnd
    source: str
    state: str


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


# ---- what a poller observed (inventory.service.sync_interfaces / record_lldp_links) ----------

# IF-MIB ifAdminStatus / ifOperStatus as stored: lowerLayerDown arrives as "down" (10 characters fit)
IF_STATUSES = ("up", "down", "testing", "unknown", "dormant", "notPresent")


@dataclass(frozen=True, slots=True)
class ObservedInterface:
    """One row of a device's IF-MIB as a poll read it."""

    if_index: int
    name: str
    alias: str = ""
    admin_status: str = "unknown"
    oper_status: str = "unknown"
    speed_bps: int | None = None


@dataclass(frozen=True, slots=True)
class ObservedNeighbor:
    """One LLDP neighbour as a poll read it (lldpRemTable + lldpLocPortTable)."""

    local_if_index: int
    local_port: str
    remote_name: str
    remote_port: str


@dataclass(frozen=True, slots=True)
class SketchDevice:
    """A device of a topology sketch (an alarm replay scenario): no address of its own, no credentials."""

    hostname: str
    role: str
    site: str | None = None
    tags: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()  # hostnames it depends on, in the same sketch


@dataclass(frozen=True, slots=True)
class SketchLink:
    a: tuple[str, str]  # (hostname, interface name)
    b: tuple[str, str]
