"""The whole loop with the lab network over real UDP on loopback:

inject a link fault -> the lab devices send linkDown traps -> trap receiver -> alarm engine ->
ticket opened automatically -> NOC dispatches -> the technician accepts and resolves through the
phone-app API -> the link is restored in the lab -> linkUp traps clear the alarm -> verified after
the hold-down -> NOC closes -> alarms archived. Time for the policy and the hold-down moves on a
FrozenClock; only the UDP delivery is awaited."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import select

from alarms.bus import AlarmBus
from alarms.models import Alarm
from alarms.runner import AlarmEngine
from collectors.receiver import DeviceDirectory
from collectors.traps import TrapReceiverService
from faultloop.accounts import service as accounts
from faultloop.settings import Settings
from inventory import service as inventory
from inventory.schemas import InventoryDoc
from lab.inventory_out import inventory_dict
from lab.network import LabNetwork
from ticketing.jobs import TicketingService
from ticketing.models import Ticket, TicketAlarm

from ..lab.conftest import small_topology
from .conftest import make_technician


async def _events(traps: TrapReceiverService, at_least: int) -> None:
    async with asyncio.timeout(20):
        while traps.receiver.stats["events"] < at_least:
            await asyncio.sleep(0.01)  # waiting for UDP delivery, not for a race: nothing below depends on timing


async def test_link_fault_to_verified_and_closed_ticket(tmp_path, runtime, session, vault, client, auth, frozen):
    topo = small_topology(
        f"127.32.{random.randint(0, 250)}.{random.randint(1, 200)}", port=random.randint(20000, 40000)
    )
    inventory.import_inventory(
        session,
        vault,
        InventoryDoc.model_validate(inventory_dict(topo)),
        actor="test",
        forget_host_key=lambda _device_id: None,
    )
    tech = make_technician(session, "lab-tech", sites=["t-site"], skills=["fiber"])
    _row, token = accounts.create_token(session, user=tech, name="phone", ttl_days=1, actor="test")
    session.commit()
    th = {"Authorization": f"Bearer {token}"}

    bus = AlarmBus()
    engine = AlarmEngine(runtime, bus)
    engine.load()
    tickets = TicketingService(runtime)
    bus.subscribe("ticketing", tickets.on_alarm_changes)
    directory = DeviceDirectory(runtime.sessions)
    directory.load()
    settings = Settings(data_dir=tmp_path / "var", trap_host=f"127.33.{random.randint(0, 250)}.1", trap_port=0)
    traps = TrapReceiverService(settings=settings, sink=engine, directory=directory)
    await traps.start()
    net = LabNetwork(topo, ssh=False, fresh_boot=False, trap_receivers=[traps.receiver.address])
    await net.start()
    try:
        seen = traps.receiver.stats["events"]
        net.faults.apply("link_down", {"device": "dist1", "interface": "GigabitEthernet0/2"})
        await _events(traps, seen + 2)  # both ends of the link
        engine.run_once()
        frozen.advance(tickets.policy.min_active_s)
        opened = tickets.run_once().opened
        tickets.run_once()  # a second round opens nothing more
        session.expire_all()
        alarms = session.scalars(select(Alarm).where(Alarm.alarm_type == "link_down")).all()
        assert {(a.device, a.state) for a in alarms} == {("dist1", "active"), ("acc1", "active")}
        [ticket] = session.scalars(select(Ticket)).all()
        assert opened == [ticket.id] and ticket.source == "alarm" and ticket.site == "t-site"
        links = session.scalars(select(TicketAlarm).where(TicketAlarm.ticket_id == ticket.id)).all()
        # both ends of the link are one fault: the second end joined the first end's ticket
        assert sorted((link.alarm_id, link.role) for link in links) == sorted(
            zip(sorted(a.id for a in alarms), ("root", "peer"), strict=True)
        )
        tid = ticket.id

        noc = auth("noc")
        for body in ({"action": "acknowledge"},
                     {"action": "diagnose", "diagnosis": "LOS both ends", "fault_category": "transmission"},
                     {"action": "dispatch"}):  # fmt: skip
            r = client.post(f"/api/v1/tickets/{tid}/transitions", json=body, headers=noc)
            assert r.status_code == 200, r.text
        assert r.json()["assignee"] == "lab-tech"  # auto: site t-site, skill fiber
        assert [t["id"] for t in client.get("/api/v1/me/tickets", headers=th).json()["items"]] == [tid]
        assert client.post(f"/api/v1/me/tickets/{tid}/accept", headers=th).status_code == 200
        for status in ("en_route", "on_site"):
            r = client.post(f"/api/v1/me/tickets/{tid}/status", json={"status": status}, headers=th)
            assert r.status_code == 200, r.text
        feedback = {"cause_category": "fiber_cut", "action_taken": "spliced", "parts_used": ["splice"]}
        r = client.post(f"/api/v1/me/tickets/{tid}/resolve", headers=th, json=feedback)
        assert r.status_code == 200 and r.json()["state"] == "resolved"

        tickets.run_once()
        session.expire_all()
        assert session.get(Ticket, tid).state == "resolved"  # the link is still down: no verification
        seen = traps.receiver.stats["events"]
        net.faults.apply("link_up", {"device": "dist1", "interface": "GigabitEthernet0/2"})
        await _events(traps, seen + 2)
        engine.run_once()
        session.expire_all()
        assert {a.state for a in session.scalars(select(Alarm).where(Alarm.alarm_type == "link_down"))} == {"cleared"}
        tickets.run_once()
        session.expire_all()
        assert session.get(Ticket, tid).state == "resolved"  # cleared, but not yet for the hold-down
        frozen.advance(runtime.settings.ticket_hold_down_s)
        assert tickets.run_once().verified == [tid]
        r = client.post(f"/api/v1/tickets/{tid}/transitions", json={"action": "close", "rating": 5}, headers=noc)
        assert r.status_code == 200 and r.json()["state"] == "closed"
        assert all(a["archived_at"] is not None for a in r.json()["alarms"])
        timeline = [e["action"] for e in client.get(f"/api/v1/tickets/{tid}/timeline", headers=noc).json()]
        assert timeline[0] == "create" and timeline[-3:] == ["resolve", "verify", "close"]
    finally:
        await net.stop()
        await traps.stop()
