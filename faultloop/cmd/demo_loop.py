"""The demo's closed loop (issue 16 item 7): customers, their services, a fault, and the people who fix it.

``seed_crew`` (at start, in the CLI's transaction, like the admin) makes the demo's people: two
technicians with dispatch profiles (skills, sites, on shift) and the NOC operator the script acts as,
each with a fresh API token. ``CustomerLoop`` then runs in the demo process and goes through the
service's own public API over HTTP, as a NOC console and a technician's phone app would:

1. provisioning: a VLAN pool and, per demo customer, an order (create, plan, approve by a second
   person, execute) that configures the customer's port on a lab device over SSH and verifies it;
2. then, one customer after the other: the lab cuts the customer's port (the only thing not done
   through the API: the lab is the world, not the product); the alarm carries the service impact;
   the ticket opens with the customer's SLA class and priority; the NOC acknowledges, diagnoses and
   dispatches without naming anyone (the auto-pick: on shift, site, skill, least load); the
   technician, with their own token, accepts, goes en route, arrives, repairs the port (the lab
   restores it) and resolves with feedback; the system verifies the ticket once the alarms stayed
   clear for the hold-down and the customer's service passes its catalog checks again.

Every step is one line on the demo's console, so a newcomer can follow the loop.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session

from faultloop.accounts import service as accounts
from faultloop.errors import DomainError
from faultloop.runtime import Runtime
from ticketing import dispatch

log = logging.getLogger("faultloop.demo")

DEMO_ACTOR = "demo"
NOC_OPERATOR = "noc-demo"
FIELD_STATES = frozenset({"dispatched", "accepted", "en_route", "on_site", "waiting"})  # with a technician
VLAN_POOL = {"name": "demo-metro", "vlan_min": 2100, "vlan_max": 2199}


@dataclass(frozen=True, slots=True)
class DemoTechnician:
    username: str
    team: str
    sites: tuple[str, ...]
    skills: tuple[str, ...] = ("fiber", "router")


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    name: str
    service_type: str  # its catalog type names the SLA class (business_internet: gold, l2_vlan: silver)
    device: str
    interface: str
    params: dict[str, str]


TECHNICIANS = (
    DemoTechnician("tech-ana", team="north", sites=("lab-north", "lab-core")),
    DemoTechnician("tech-ben", team="south", sites=("lab-south",)),
)
CUSTOMERS = (
    DemoCustomer("Northwind Bank", "business_internet", "acc5", "GigabitEthernet0/3",
                 {"description": "NORTHWIND BANK internet 100M"}),
    DemoCustomer("Contoso Retail", "l2_vlan", "acc2", "GigabitEthernet0/3",
                 {"vlan_name": "CONTOSO-L2", "description": "CONTOSO RETAIL L2 VPN"}),
)  # fmt: skip


@dataclass
class DemoCrew:
    """The demo's people: passwords only when they were created now (printed once), tokens always."""

    passwords: dict[str, str | None] = field(default_factory=dict)  # technician -> password (new) or None
    tokens: dict[str, str] = field(default_factory=dict)  # technicians and the NOC operator -> API token


def seed_crew(rt: Runtime, session: Session) -> DemoCrew:
    """Create the demo's technicians (dispatch profiles, on shift) and NOC operator when missing, and
    give each a fresh API token. A profile is written again every start, so the demo always has
    technicians on shift for its sites."""
    crew = DemoCrew()
    people = [(t.username, "technician") for t in TECHNICIANS] + [(NOC_OPERATOR, "noc")]
    for username, role in people:
        password: str | None = None
        try:
            user = accounts.get_user(session, username)
        except DomainError:
            password = secrets.token_urlsafe(12)
            user = accounts.create_user(session, username=username, role=role, password=password, actor=DEMO_ACTOR)
        _row, token = accounts.create_token(
            session, user=user, name="demo loop", ttl_days=rt.settings.token_ttl_days, actor=DEMO_ACTOR
        )
        crew.tokens[username] = token
        if role == "technician":
            crew.passwords[username] = password
    for tech in TECHNICIANS:
        dispatch.upsert_profile(session, username=tech.username, skills=list(tech.skills), sites=list(tech.sites),
                                team=tech.team, tier=1, on_shift=True)  # fmt: skip
    return crew


class LoopError(RuntimeError):
    """A step of the loop did not go as the script expects (the line says which)."""


Lab = Any  # lab.network.LabNetwork: the demo hands it in (the composition root owns the lab)


@dataclass
class CustomerLoop:
    base_url: str
    admin_token: str
    crew: DemoCrew
    lab: Lab
    say: Callable[[str], None]
    step_s: float = 4.0  # a pause between the people's steps, so a watcher can follow on the dashboard
    settle_s: float = 20.0  # after provisioning: the orders' maintenance windows close first
    pause_s: float = 45.0  # between two rounds
    wait_s: float = 600.0  # the longest any one step waits for the service
    rounds_done: int = 0

    # ---- HTTP -----------------------------------------------------------------------------------

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def _call(self, http: httpx.AsyncClient, method: str, path: str, token: str, **kw: Any) -> Any:
        r = await http.request(method, path, headers=self._headers(token), **kw)
        if r.status_code >= 400:
            raise LoopError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    async def _until(self, what: str, probe: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.wait_s
        while True:
            got = await probe()
            if got:
                return got
            if time.monotonic() > deadline:
                raise LoopError(f"gave up waiting for {what} after {self.wait_s:.0f} s")
            await asyncio.sleep(2.0)

    # ---- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=120) as http:
            await self._until("the service", lambda: self._up(http))
            while True:
                try:
                    await self.provision(http)
                    break
                except (LoopError, httpx.HTTPError) as exc:
                    self.say(f"provisioning did not finish ({exc}); trying again in 60 s")
                    await asyncio.sleep(60)
            await asyncio.sleep(self.settle_s)
            turn = 0
            while True:
                customer = CUSTOMERS[turn % len(CUSTOMERS)]
                turn += 1
                try:
                    await self.round(http, customer)
                    self.rounds_done += 1
                except (LoopError, httpx.HTTPError) as exc:
                    self.say(f"round for {customer.name} stopped: {exc}")
                    self.lab.faults.apply("link_up", {"device": customer.device, "interface": customer.interface})
                await asyncio.sleep(self.pause_s)

    async def _up(self, http: httpx.AsyncClient) -> bool:
        try:
            return (await http.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def provision(self, http: httpx.AsyncClient) -> None:
        """A VLAN pool, then one order per demo customer that has no active service yet."""
        admin = self.admin_token
        pools = await self._call(http, "GET", "/api/v1/vlan-pools", admin)
        if not any(p["name"] == VLAN_POOL["name"] for p in pools):
            await self._call(http, "POST", "/api/v1/vlan-pools", admin, json=VLAN_POOL)
        for c in CUSTOMERS:
            active = await self._call(http, "GET", "/api/v1/services", admin,
                                      params={"customer": c.name, "state": "active"})  # fmt: skip
            target = [{"device": c.device, "params": {"interface": c.interface}}]
            if not active:
                body = {"service_type": c.service_type, "customer": c.name, "vlan_pool": VLAN_POOL["name"],
                        "params": c.params, "targets": target}  # fmt: skip
                done = await self._order(http, body, c)
                self.say(f"order #{done['id']}: {c.service_type} for {c.name} on {c.device} {c.interface} pushed"
                         f" over SSH and verified: service #{done['service_id']} active")  # fmt: skip
            elif not self._on_the_lab(c, active[0]):
                # the lab starts afresh every run (its devices keep no configuration): put it back
                body = {"action": "modify", "service_id": active[0]["id"], "service_type": c.service_type,
                        "customer": c.name, "params": c.params, "targets": target}  # fmt: skip
                done = await self._order(http, body, c)
                self.say(f"order #{done['id']}: service #{active[0]['id']} of {c.name} ({c.service_type}) put back"
                         f" on {c.device} {c.interface}, the lab having started afresh")  # fmt: skip
            else:
                self.say(f"service #{active[0]['id']} of {c.name} ({c.service_type}) is active")

    def _on_the_lab(self, c: DemoCustomer, service: dict[str, Any]) -> bool:
        """Does the lab device carry the service's configuration (its port description and VLAN)?"""
        port = next((i for i in self.lab.devices[c.device].interfaces if i.name == c.interface), None)
        vlans = {r["vlan"] for r in service["resources"] if r["interface"] == c.interface}
        return port is not None and port.alias == c.params["description"] and port.access_vlan in vlans

    async def _order(self, http: httpx.AsyncClient, body: dict[str, Any], c: DemoCustomer) -> dict[str, Any]:
        """Create, plan, approve (four eyes: another person) and execute one order; it must complete."""
        admin, noc = self.admin_token, self.crew.tokens[NOC_OPERATOR]
        oid = (await self._call(http, "POST", "/api/v1/orders", admin, json=body))["id"]
        await self._call(http, "POST", f"/api/v1/orders/{oid}/plan", admin)
        await self._call(http, "POST", f"/api/v1/orders/{oid}/approve", noc)
        done: dict[str, Any] = await self._call(http, "POST", f"/api/v1/orders/{oid}/execute", admin)
        if done["state"] != "completed":
            raise LoopError(f"order {oid} for {c.name} ended {done['state']}: {done.get('result')}")
        return done

    async def round(self, http: httpx.AsyncClient, c: DemoCustomer) -> None:
        admin, noc = self.admin_token, self.crew.tokens[NOC_OPERATOR]
        started = time.monotonic()
        self.lab.faults.apply("link_down", {"device": c.device, "interface": c.interface})
        self.say(f"fault: {c.device} {c.interface} goes down ({c.name}'s {c.service_type} port)")

        async def alarm_with(key: str) -> dict[str, Any] | None:
            page = await self._call(http, "GET", "/api/v1/alarms", admin,
                                    params={"customer": c.name, "state": "active", "root_only": "true"})  # fmt: skip
            return next((a for a in page["items"] if a.get(key)), None)

        alarm = await self._until(f"an alarm affecting {c.name}", lambda: alarm_with("services_affected"))
        self.say(f"alarm #{alarm['id']} {alarm['alarm_type']} on {alarm['device']}: affects "
                 f"{alarm['services_affected']} service(s) / {alarm['customers_affected']} customer(s)")  # fmt: skip
        alarm = await self._until(f"a ticket for {c.name}", lambda: alarm_with("ticket_id"))
        tid = alarm["ticket_id"]

        async def ticket() -> dict[str, Any]:
            got: dict[str, Any] = await self._call(http, "GET", f"/api/v1/tickets/{tid}", noc)
            return got

        t = await ticket()
        self.say(f"ticket #{tid} {t['state']}: {t['priority']} from {c.name}'s SLA class {t.get('sla_class')}")
        # the NOC: take it, say what it is, dispatch without naming anyone (the auto-pick)
        noc_steps = {
            "new": {"action": "acknowledge"},
            "acknowledged": {"action": "diagnose", "diagnosis": f"{c.interface} on {c.device} down: LOS towards "
                             f"{c.name}'s premises", "fault_category": "transmission"},
            "diagnosed": {"action": "dispatch"},
        }  # fmt: skip
        while t["state"] in noc_steps:
            await asyncio.sleep(self.step_s)
            step = noc_steps[t["state"]]
            t = await self._call(http, "POST", f"/api/v1/tickets/{tid}/transitions", noc,
                                 json={**step, "version": t["version"]})  # fmt: skip
            who = f" to {t['assignee']} (on shift, site, skill, least load)" if step["action"] == "dispatch" else ""
            self.say(f"ticket #{tid} {t['state']} by {NOC_OPERATOR}{who}")
        tech = t.get("assignee")
        if t["state"] in FIELD_STATES and tech not in {x.username for x in TECHNICIANS}:
            # the pick chose someone the script cannot act for (a real technician added to the demo):
            # hand it to the demo's technician for the site, as a NOC operator would
            mine = next((x for x in TECHNICIANS if t.get("site") in x.sites), TECHNICIANS[0])
            await asyncio.sleep(self.step_s)
            t = await self._call(http, "POST", f"/api/v1/tickets/{tid}/transitions", noc,
                                 json={"action": "reassign", "technician": mine.username, "version": t["version"]})
            self.say(f"ticket #{tid} reassigned by {NOC_OPERATOR} from {tech} to {t['assignee']}")
            tech = t.get("assignee")
        token = self.crew.tokens.get(tech or "")
        if token is None or t["state"] not in FIELD_STATES:
            raise LoopError(f"ticket {tid} is {t['state']} with {tech!r}, not with a demo technician")
        # the technician's phone app, from wherever the ticket is (a demo stopped mid-round left it
        # there): accept, on the way, on site, then repair and resolve
        eta = (datetime.now(UTC) + timedelta(minutes=20)).isoformat()
        tech_steps: dict[str, tuple[str, dict[str, Any]]] = {
            "dispatched": ("accept", {}),
            "accepted": ("status", {"status": "en_route", "eta": eta, "location_note": "van 3, leaving the depot"}),
            "en_route": ("status", {"status": "on_site", "location_note": f"at {c.device}'s cabinet"}),
            "waiting": ("status", {"status": "resume"}),
        }
        while t["state"] in tech_steps:
            path, body = tech_steps[t["state"]]
            await asyncio.sleep(self.step_s)
            t = await self._call(http, "POST", f"/api/v1/me/tickets/{tid}/{path}", token,
                                 json={**body, "version": t["version"]})  # fmt: skip
            self.say(f"ticket #{tid} {t['state']} ({tech})")
        await asyncio.sleep(self.step_s)
        self.lab.faults.apply("link_up", {"device": c.device, "interface": c.interface})
        self.say(f"repair: {tech} replaces the patch cord, {c.device} {c.interface} is up again")
        await asyncio.sleep(self.step_s)
        feedback = {"cause_category": "fiber_cut", "action_taken": "replaced the damaged patch cord",
                    "parts_used": ["LC-LC patch cord 2 m"], "notes": "light levels checked both ways"}  # fmt: skip
        t = await self._call(http, "POST", f"/api/v1/me/tickets/{tid}/resolve", token,
                             json={**feedback, "version": t["version"]})  # fmt: skip
        self.say(f"ticket #{tid} resolved by {tech}; the system verifies it once its alarms stay clear"
                 f" for the hold-down and {c.name}'s service passes its checks again")  # fmt: skip

        async def verified() -> dict[str, Any] | None:
            got = await ticket()
            if got["state"] not in ("resolved", "verified", "closed"):
                raise LoopError(f"ticket {tid} went {got['state']} instead of verified")
            return got if got["state"] in ("verified", "closed") else None

        await self._until(f"ticket {tid} verified", verified)
        self.say(f"ticket #{tid} verified: {c.name}'s service is back ({time.monotonic() - started:.0f} s from fault)")
