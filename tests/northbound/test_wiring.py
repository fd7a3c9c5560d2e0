"""The composition root wires the TM Forum APIs: the engine's outbox, the domain hooks (alarm
operator actions, ticket changes, order and service changes) registered only while the pipeline
runs, and the hub delivery on the pipeline's leadership."""

from __future__ import annotations

from sqlalchemy import text

from alarms import service as alarm_service
from alarms.runner import AlarmEngine
from faultloop.cmd.app import Hook, build_pipeline
from northbound.hub import HubDelivery
from provisioning import service as provisioning
from ticketing import service as ticket_service


async def test_pipeline_runs_the_hub_delivery_and_registers_the_hooks(runtime):
    pipeline = build_pipeline(runtime)
    [delivery] = [s for s in pipeline.services if isinstance(s, HubDelivery)]
    assert delivery.leadership is pipeline.leadership and pipeline.leadership is not None  # leader-only
    [engine] = [s for s in pipeline.services if isinstance(s, AlarmEngine)]
    assert "tmf-hub" in [name for name, _fn in engine._outboxes]
    hooks = {(id(s.registry), s.key): s for s in pipeline.services if isinstance(s, Hook)}
    registries = [alarm_service.OUTBOX, ticket_service.CHANGES, ticket_service.OUTBOX, provisioning.ORDER_OUTBOX,
                  provisioning.SERVICE_OUTBOX]  # fmt: skip
    assert set(hooks) == {(id(r), "tmf-hub") for r in registries}  # no ITSM hook: FAULTLOOP_ITSM_URL unset
    # registered only while running: a pipeline built and never started leaves the domains untouched
    assert all("tmf-hub" not in r for r in registries)
    for hook in hooks.values():
        await hook.start()
    try:
        assert all(r["tmf-hub"] is hooks[(id(r), "tmf-hub")].write for r in registries)
    finally:
        for hook in hooks.values():
            await hook.stop()
    assert all("tmf-hub" not in r for r in registries)


async def test_a_hook_with_a_wake_wakes_the_delivery_after_a_commit_that_wrote_hub_events(runtime, session):
    from northbound import hub

    woken: list[str] = []
    writes: list[str] = []

    def change(session, ticket, change, detail):
        writes.append(change)
        if change == "publishes":
            session.info[hub._WRITTEN] = True  # what hub.publish_many leaves when it wrote rows

    def write(what: str) -> None:  # in a transaction that did something, as a ticket change's does
        session.execute(text("SELECT 1"))
        hook.write(session, None, what, {})

    hook = Hook(ticket_service.CHANGES, "probe", change, wake=lambda: woken.append("wake"))
    write("quiet")
    session.commit()
    assert (writes, woken) == (["quiet"], [])
    write("publishes")
    session.rollback()
    assert woken == []  # rolled back: nothing to send
    write("publishes")
    session.commit()
    assert woken == ["wake"]

