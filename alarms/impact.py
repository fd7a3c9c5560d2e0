"""Customer service impact: which services an alarm hurts, as pure functions over an index.

The alarm engine does not know where services come from (provisioning keeps them, and
alarms may not import it): the composition root hands it a ``ServiceSource``, a callable
that reads the service footprints (one per service resource) in the engine's session.

An alarm affects a service *directly* when one of the service's resources sits on the
alarmed interface (or a sub-interface of it), the alarmed VLAN, or the failed device; and
*through the topology* when the service's device is reachable from the poller only through
the failed element (the same reachability the correlation uses, so a dual-homed device
with one uplink left is not impacted). A root cause carries the union of its children's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.orm import Session

from alarms.topology import interface_of


class ServiceFootprint(Protocol):
    """One resource of an active customer service (provisioning's read API provides these)."""

    @property
    def service_id(self) -> int: ...
    @property
    def customer(self) -> str: ...
    @property
    def service_type(self) -> str: ...
    @property
    def sla_class(self) -> str | None: ...
    @property
    def device(self) -> str: ...  # hostname
    @property
    def interface(self) -> str: ...
    @property
    def vlan(self) -> int | None: ...


ServiceSource = Callable[[Session], Sequence[ServiceFootprint]]

@dataclass(frozen=True, slots=True)
class ServiceInfo:
    service_id: int
    customer: str
    service_type: str
    sla_class: str | None


@dataclass
class ServiceIndex:
    by_device: dict[str, list[ServiceFootprint]] = field(default_factory=dict)
    info: dict[int, ServiceInfo] = field(default_factory=dict)

    @classmethod
    def of(cls, footprints: Iterable[ServiceFootprint]) -> ServiceIndex:
        index = cls()
        for fp in footprints:
            index.by_device.setdefault(fp.device, []).append(fp)
            index.info.setdefault(fp.service_id, ServiceInfo(fp.service_id, fp.customer, fp.service_type, fp.sla_class))
        return index

    def direct(self, *, device: str, managed_object: str, device_failed: bool) -> set[int]:
        """Services with a resource on the alarmed object of ``device``."""
        footprints = self.by_device.get(device)
        if not footprints:
            return set()
        if device_failed:
            return {fp.service_id for fp in footprints}
        iface = interface_of(managed_object)
        if iface is not None:
            return {fp.service_id for fp in footprints if fp.interface and _on_port(fp.interface, iface)}
        vlan = vlan_of(managed_object)
        if vlan is not None:
            return {fp.service_id for fp in footprints if fp.vlan == vlan}
        return set()

    def customers(self, service_ids: Iterable[int]) -> int:
        return len({self.info[s].customer for s in service_ids if s in self.info})


def _on_port(resource_interface: str, alarmed: str) -> bool:
    """The resource is the alarmed interface, or a sub-interface of it (Gi0/1.120 under Gi0/1)."""
    return resource_interface == alarmed or resource_interface.startswith(alarmed + ".")


def vlan_of(managed_object: str) -> int | None:
    """'vlan:120' -> 120; anything else -> None."""
    kind, sep, value = managed_object.partition(":")
    if sep and kind == "vlan" and value.isdigit():
        return int(value)
    return None


# ---- a service's operational state, from the impact of the active alarms ------------------------

STATES = ("up", "degraded", "down")
STATE_RANK = {state: rank for rank, state in enumerate(STATES)}


def service_states(impacts: Iterable[tuple[int, Mapping[int, tuple[str, str]]]]) -> dict[int, tuple[str, int]]:
    """{service id: (state, alarm id)} over the impact of the *active* alarms given as (alarm id,
    {service id: (how, level)}): a service is ``down`` when any active alarm's impact on it is
    ``down``, else ``degraded`` when one is ``degraded``; a service absent from the answer is ``up``.
    The alarm named is the lowest id among those giving the worst level (stable across rounds)."""
    worst: dict[int, tuple[str, int]] = {}
    for alarm_id, impact in impacts:
        for service_id, (_how, level) in impact.items():
            if level not in ("down", "degraded"):
                continue
            found = worst.get(service_id)
            if (
                found is None
                or STATE_RANK[level] > STATE_RANK[found[0]]
                or (level == found[0] and alarm_id < found[1])
            ):
                worst[service_id] = (level, alarm_id)
    return worst
