"""The lab's control API: a tiny HTTP/1.1 JSON server on asyncio streams.

Deliberately not faultloop's FastAPI app: the lab is a separate simulated network and
must run without the product. One request per connection (``Connection: close``).

Routes::

    GET  /health                      {"status": "ok", "devices": N}
    GET  /devices                     [{name, address, role, crashed, ...}]
    GET  /devices/{name}              device detail with interfaces and agent stats
    GET  /stats                       agent and trap counters
    GET  /faults                      the fault kinds and their parameters
    POST /faults/{kind}               {"device": ..., ...}  (kind: link-down, crash, ...)
    POST /scenarios                   {"steps": [...]} or {"yaml": "..."}; optional "speed"

Errors are JSON ``{"error": "..."}``: 400 bad JSON, 404 unknown route/device/interface,
422 invalid parameters.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import yaml

from lab.faults import FAULTS, FaultError, UnknownTarget

if TYPE_CHECKING:
    from lab.network import LabNetwork

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControlServer:
    def __init__(self, network: LabNetwork, *, host: str = "127.0.0.1", port: int = 8099) -> None:
        self.net = network
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, payload = 500, {"error": "internal error"}
        try:
            method, path, body = await asyncio.wait_for(self._read_request(reader, writer), timeout=10)
            status, payload = 200, self.route(method, path, body)
        except HttpError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except UnknownTarget as exc:
            status, payload = 404, {"error": str(exc)}
        except FaultError as exc:
            status, payload = 422, {"error": str(exc)}
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except Exception:
            log.exception("lab control API error")
        data = json.dumps(payload, default=str).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode() + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[str, str, Any]:
        line = (await reader.readline()).decode("latin-1").strip()
        parts = line.split()
        if len(parts) != 3:
            raise HttpError(400, "malformed request line")
        method, target, _ = parts
        length = 0
        expect_continue = False
        for _ in range(100):
            h = (await reader.readline()).decode("latin-1").strip()
            if not h:
                break
            name, _, value = h.partition(":")
            if name.strip().lower() == "expect" and value.strip().lower() == "100-continue":
                expect_continue = True
            if name.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise HttpError(400, "bad Content-Length") from None
        if length > MAX_BODY:
            raise HttpError(413, "body too large")
        body: Any = None
        if length and expect_continue:  # curl waits for this before sending bodies > 1 KiB
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        if length:
            raw = await reader.readexactly(length)
            try:
                body = json.loads(raw)
            except ValueError:
                raise HttpError(400, "body is not valid JSON") from None
        return method.upper(), target.split("?", 1)[0].rstrip("/") or "/", body

    # ------------------------------------------------------------ routes
    def route(self, method: str, path: str, body: Any) -> Any:
        net = self.net
        parts = [p for p in path.split("/") if p]
        if method == "GET":
            if parts == ["health"]:
                return {"status": "ok", "devices": len(net.devices)}
            if parts == ["devices"]:
                return [self._device_summary(d) for d in net.devices.values()]
            if len(parts) == 2 and parts[0] == "devices":
                d = net.devices.get(parts[1])
                if d is None:
                    raise HttpError(404, f"unknown device {parts[1]!r}")
                return self._device_detail(d)
            if parts == ["stats"]:
                return net.stats()
            if parts == ["faults"]:
                return {k.replace("_", "-"): {"required": list(r), "optional": list(o)} for k, (r, o) in FAULTS.items()}
            raise HttpError(404, f"no route GET {path}")
        if method == "POST":
            if len(parts) == 2 and parts[0] == "faults":
                if parts[1].replace("-", "_") not in FAULTS:
                    raise HttpError(
                        404,
                        f"unknown fault {parts[1]!r}; expected one of "
                        + ", ".join(k.replace("_", "-") for k in FAULTS),
                    )
                if not isinstance(body, dict):
                    raise HttpError(400, "expected a JSON object body")
                return net.faults.apply(parts[1], body)
            if parts == ["scenarios"]:
                return self._start_scenario(body)
            raise HttpError(404, f"no route POST {path}")
        raise HttpError(405, f"method {method} not allowed")

    def _start_scenario(self, body: Any) -> Any:
        if not isinstance(body, dict):
            raise HttpError(400, "expected a JSON object body")
        speed = body.get("speed", 1.0)
        if not isinstance(speed, int | float) or isinstance(speed, bool) or speed <= 0:
            raise FaultError(f"field 'speed': expected a positive number, got {speed!r}")
        if "yaml" in body:
            try:
                data = yaml.safe_load(body["yaml"])
            except yaml.YAMLError as exc:
                raise FaultError(f"field 'yaml': not valid YAML: {exc}") from None
        else:
            data = {k: v for k, v in body.items() if k != "speed"}
        scenario = self.net.faults.parse_scenario(data, str(body.get("source", "scenario")))
        sid = self.net.faults.start_scenario(scenario, speed=float(speed))
        return {"scenario_id": sid, "name": scenario.name, "steps": len(scenario.steps)}

    @staticmethod
    def _device_summary(d: Any) -> dict[str, Any]:
        return {
            "name": d.name,
            "address": d.address,
            "role": d.role,
            "site": d.site,
            "device_type": d.device_type,
            "snmp_port": d.snmp_port,
            "ssh_port": d.ssh_port,
            "crashed": d.crashed,
            "cpu_load": d.cpu_load,
        }

    def _device_detail(self, d: Any) -> dict[str, Any]:
        now = self.net.now()
        agent = self.net.agents.get(d.name)
        return {
            **self._device_summary(d),
            "uptime_s": round(now - d.boot_time, 1),
            "engine_boots": d.engine_boots,
            "snmp_delay_s": d.snmp_delay_s,
            "snmp_drop_pct": d.snmp_drop_pct,
            "parents": d.parents,
            "agent": agent.stats.as_dict() if agent else None,
            "interfaces": [
                {
                    "name": i.name,
                    "if_index": i.if_index,
                    "admin_up": i.admin_up,
                    "oper_up": i.oper_up,
                    "neighbor": list(i.neighbor) if i.neighbor else None,
                    "in_bps": i.in_rate_bps,
                    "out_bps": i.out_rate_bps,
                    "in_octets": i.in_octets(now),
                    "out_octets": i.out_octets(now),
                    "in_errors": i.in_errors(now),
                    "error_rate_pps": i.error_rate_pps,
                }
                for i in d.interfaces
            ],
        }
