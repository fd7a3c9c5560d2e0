"""The composition root wires TMF642: the engine's outbox, the operator-action hook while the
pipeline runs, and the hub delivery on the pipeline's leadership."""

from __future__ import annotations

from alarms import service as alarm_service
from alarms.runner import AlarmEngine
from faultloop.cmd.app import AlarmActionHook, build_pipeline
from northbound.hub import HubDelivery


async def test_pipeline_runs_the_hub_delivery_and_registers_the_hooks(runtime):
    pipeline = build_pipeline(runtime)
    [delivery] = [s for s in pipeline.services if isinstance(s, HubDelivery)]
    assert delivery.leadership is pipeline.leadership and pipeline.leadership is not None  # leader-only
    [engine] = [s for s in pipeline.services if isinstance(s, AlarmEngine)]
    assert "tmf-hub" in [name for name, _fn in engine._outboxes]
    [hook] = [s for s in pipeline.services if isinstance(s, AlarmActionHook)]
    # started before the delivery, stopped after it; registered only while running
    assert pipeline.services.index(hook) < pipeline.services.index(delivery)
    assert "tmf-hub" not in alarm_service.OUTBOX
    await hook.start()
    try:
        assert alarm_service.OUTBOX["tmf-hub"] is hook.write
    finally:
        await hook.stop()
    assert "tmf-hub" not in alarm_service.OUTBOX
