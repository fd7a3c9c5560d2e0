"""Unplanned change events (a backup change no order explains) and scheduled execution in a change window."""

from __future__ import annotations

from datetime import timedelta

from faultloop import clock
from faultloop.clock import FrozenClock
from faultloop.db import transaction
from faultloop.events import Event
from provisioning import service as orders
from provisioning.jobs import ProvisioningService, due_orders
from provisioning.unplanned import UnplannedChangeSink
from tests.collectors import cli_lab
from tests.provisioning.lab import add_device, lab_device

bg, host_key, lab_ssh, file_runtime, sink = (
    cli_lab.bg,
    cli_lab.host_key,
    cli_lab.lab_ssh,
    cli_lab.file_runtime,
    cli_lab.sink,
)


def _changed(device: str) -> Event:
    return Event(
        source="backup",
        device=device,
        event_type="config_changed",
        severity="warning",
        time=clock.now(),
        raw={"backup_id": 7, "previous_backup_id": 6, "lines_added": 1, "lines_removed": 0, "actor": "x"},
    )


def test_config_change_without_an_order_is_unplanned_with_one_it_is_not(file_runtime, sink, lab_ssh, bg) -> None:
    rt = file_runtime
    frozen = FrozenClock()
    lab, transport = lab_device(lab_ssh, bg, "pv-unpl1")
    transport.close()
    with clock.use(frozen):
        with transaction(rt.sessions) as session:
            add_device(session, rt.vault, lab, snmp=False)
        wrapped = UnplannedChangeSink(sink, rt.sessions, grace_s=300)

        assert wrapped.submit_events([_changed(lab.name)])
        assert [e.event_type for e in sink.events] == ["config_changed", "unplanned_change"]
        unplanned = sink.events[1]
        assert (unplanned.source, unplanned.device, unplanned.severity) == ("provisioning", lab.name, "warning")
        assert unplanned.raw == {"backup_id": 7, "previous_backup_id": 6, "lines_added": 1, "lines_removed": 0}

        body = {
            "service_type": "interface_state",
            "customer": "ACME",
            "params": {"state": "up"},
            "targets": [{"device": lab.name, "params": {"interface": "GigabitEthernet0/1"}}],
        }
        with transaction(rt.sessions) as session:
            order = orders.create_order(session, orders.parse_order(body), actor="pat")
            orders.act(
                session, order.id, "plan", actor="pat", role="provisioner", four_eyes=True, vault=file_runtime.vault
            )
            order.state = "executing"
            order_id = order.id
        sink.events.clear()
        wrapped.submit_events([_changed(lab.name)])
        assert [e.event_type for e in sink.events] == ["config_changed"]  # explained by the executing order

        with transaction(rt.sessions) as session:
            o = orders.get_order(session, order_id)
            o.state, o.finished_at = "completed", clock.now()
        frozen.advance(299)
        sink.events.clear()
        wrapped.submit_events([_changed(lab.name)])
        assert [e.event_type for e in sink.events] == ["config_changed"]  # a recent order
        frozen.advance(2)
        sink.events.clear()
        wrapped.submit_events([_changed(lab.name), _changed("other-device")])
        assert [e.event_type for e in sink.events] == [
            "config_changed",
            "config_changed",
            "unplanned_change",
            "unplanned_change",
        ]


def test_an_approved_order_runs_when_its_change_window_opens(file_runtime, lab_ssh, bg) -> None:
    rt = file_runtime
    rt.settings = rt.settings.model_copy(
        update={"ssh_timeout_s": 15, "provisioning_check_timeout_s": 5, "poll_timeout_s": 1}
    )
    lab, transport = lab_device(lab_ssh, bg, "pv-sched1")
    try:
        frozen = FrozenClock(clock.now())
        with clock.use(frozen):
            with transaction(rt.sessions) as session:
                add_device(session, rt.vault, lab)
            start = clock.now() + timedelta(hours=2)
            body = {
                "service_type": "interface_state",
                "customer": "ACME",
                "params": {"state": "down"},
                "targets": [{"device": lab.name, "params": {"interface": lab.interfaces[2].name}}],
                "window_start": start.isoformat(),
                "window_end": (start + timedelta(hours=1)).isoformat(),
            }
            with transaction(rt.sessions) as session:
                order = orders.create_order(session, orders.parse_order(body), actor="pat")
                orders.act(
                    session, order.id, "plan", actor="pat", role="provisioner", four_eyes=True, vault=file_runtime.vault
                )
                orders.act(
                    session, order.id, "approve", actor="nina", role="noc", four_eyes=True, vault=file_runtime.vault
                )
                order_id = order.id
            service = ProvisioningService(rt)
            assert due_orders(rt) == [] and service.tick() == []
            assert lab.interfaces[2].admin_up is True  # not before the window
            frozen.advance(2 * 3600)
            outcomes = service.tick()
            assert [(o.order_id, o.state) for o in outcomes] == [(order_id, "completed")], outcomes
            assert lab.interfaces[2].admin_up is False
            with transaction(rt.sessions) as session:
                assert orders.get_order(session, order_id).executed_by == "scheduler"
            assert service.tick() == []  # done once
    finally:
        transport.close()
