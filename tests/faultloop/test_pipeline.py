"""The wiring module's pipeline starts services in order and stops them in reverse."""

import pytest
from fastapi.testclient import TestClient

from faultloop.app import Pipeline, StartupError, create_app


class Recorder:
    def __init__(self, name, log, fail_start=False, fail_stop=False):
        self.name, self.log, self.fail_start, self.fail_stop = name, log, fail_start, fail_stop

    async def start(self):
        if self.fail_start:
            raise RuntimeError("cannot bind")
        self.log.append(f"start {self.name}")

    async def stop(self):
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError("stuck")


def test_lifespan_starts_and_stops_in_order(runtime):
    log = []
    pipeline = Pipeline([Recorder("a", log), Recorder("b", log, fail_stop=True), Recorder("c", log)])
    with TestClient(create_app(runtime, pipeline)) as client:
        assert client.get("/healthz").status_code == 200
        assert log == ["start a", "start b", "start c"]
    assert log[3:] == ["stop c", "stop b", "stop a"]


async def test_a_failed_start_stops_what_was_started():
    log = []
    pipeline = Pipeline([Recorder("a", log), Recorder("b", log, fail_start=True), Recorder("c", log)])
    with pytest.raises(StartupError, match="cannot start b: cannot bind"):
        await pipeline.start()
    assert log == ["start a", "stop a"]
