"""The wiring module's pipeline starts services in order and stops them in reverse."""

import pytest
from fastapi.testclient import TestClient

from faultloop.cmd.app import Pipeline, StartupError, create_app


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


SERVE_AND_REPORT_FROZEN = r"""
import asyncio, gc, socket, sys
from fastapi import FastAPI
from faultloop.cmd.app import serve_http

app = FastAPI()

@app.get("/frozen")
def frozen():
    return {"frozen": gc.get_freeze_count()}

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
print(port, flush=True)
asyncio.run(serve_http(app, host="127.0.0.1", port=port, log_level="warning"))
"""


def test_the_serving_process_freezes_its_start_up_heap():
    """A full collection must not walk the start-up heap while requests wait (the p99 of the API)."""
    import subprocess
    import sys
    import time

    import httpx

    proc = subprocess.Popen([sys.executable, "-c", SERVE_AND_REPORT_FROZEN], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        deadline = time.monotonic() + 30
        while True:
            try:
                frozen = httpx.get(f"http://127.0.0.1:{port}/frozen").json()["frozen"]
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer within 30 s"
                time.sleep(0.05)
        assert frozen > 10_000  # FastAPI, pydantic and uvicorn alone leave far more than this alive
    finally:
        proc.terminate()
        proc.wait(10)
