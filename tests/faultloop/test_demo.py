"""`faultloop demo` end to end: lab up, inventory imported, API answers with the printed
credentials, Ctrl-C stops everything cleanly."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx


def _free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_serves_the_lab_inventory_with_the_printed_credentials(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    port = _free_port()
    env.update(
        FAULTLOOP_DATA_DIR=str(tmp_path / "var"),
        FAULTLOOP_CONFIG=str(tmp_path / "none.toml"),
        FAULTLOOP_PORT=str(port),
        FAULTLOOP_TRAP_PORT=str(_free_port(socket.SOCK_DGRAM)),
        FAULTLOOP_SYSLOG_PORT=str(_free_port(socket.SOCK_DGRAM)),
        COLUMNS="200",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultloop.cmd", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("stop:" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "demo did not announce itself:\n" + "".join(lines)
            time.sleep(0.2)
        text = "".join(lines)
        token = re.search(r"API token:\s+(flt_\S+)", text).group(1)
        password = re.search(r"password (\S+) \(shown once\)", text).group(1)
        base = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{base}/healthz").json()
        assert health == {"status": "ok", "role": "all", "election": "local", "leader": True, "epoch": 0}
        devices = httpx.get(f"{base}/api/v1/devices", headers={"Authorization": f"Bearer {token}"}).json()
        assert devices["total"] == 20
        login = httpx.post(f"{base}/api/v1/auth/token", json={"username": "admin", "password": password})
        assert login.status_code == 201
        assert httpx.get(f"{base}/readyz").status_code == 200
        # issue 15 item 7: the demo holds the service lock like `serve`; rotating under it is refused
        key_file = tmp_path / "var" / "secret.key"
        keys_before = key_file.read_bytes()
        rotate = subprocess.run(
            [sys.executable, "-m", "faultloop.cmd", "secrets", "rotate"], env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert rotate.returncode == 2, rotate.stderr
        assert "a faultloop service is running on" in rotate.stderr and rotate.stderr.count("\n") == 1
        assert key_file.read_bytes() == keys_before
        # SIGUSR1 dumps every thread's stack (for a process that will not stop) and carries on
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not any("most recent call first" in line for line in lines):
            assert time.monotonic() < deadline, "no stack dump after SIGUSR1"
            time.sleep(0.1)
        assert proc.poll() is None and httpx.get(f"{base}/healthz").status_code == 200
        # an open live stream (a dashboard tab) must not keep the stopping service waiting
        streamed: list[str] = []

        def listen() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.stream("GET", f"{base}/api/v1/alarms/stream", headers=headers, timeout=120) as r:
                streamed.extend(r.iter_lines())

        stream = threading.Thread(target=listen, daemon=True)
        stream.start()
        deadline = time.monotonic() + 10
        while not any("GET /api/v1/alarms/stream" in line for line in lines):
            assert time.monotonic() < deadline, "the live stream was not opened"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)  # every thread's stack into the output: what held it up
                time.sleep(2)
                proc.kill()
        reader.join(timeout=5)
    assert proc.returncode == 0, "".join(lines)
    stream.join(timeout=10)
    assert not stream.is_alive() and ": connected" in streamed  # it was open, and it was ended
    assert "demo stopped" in "".join(lines)
    assert "Traceback" not in "".join(lines)


def _run_demo_until(env, *needles: str, timeout_s: float = 180) -> str:
    """Start the demo, wait until every needle is in its output, stop it with SIGINT (exit code 0)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultloop.cmd", "demo", "--lab-snmp-port", str(_free_port(socket.SOCK_DGRAM)),
         "--lab-ssh-port", str(_free_port()), "--lab-control-port", str(_free_port())],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not all(n in "".join(lines) for n in needles):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"no {needles} in:\n" + "".join(lines)
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(timeout=5)
    text = "".join(lines)
    assert proc.returncode == 0, text
    assert "Traceback" not in text and "HostKeyChanged" not in text
    return text


def test_a_second_demo_run_puts_the_customer_services_back_on_the_fresh_lab(tmp_path):
    """Issue 16 item 7: the demo orders its customers' services on the lab; the lab keeps no configuration
    between runs, so a second run (same data directory, same pinned SSH host key) puts it back with a
    modify order, and the technicians' passwords are printed on the first run only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    env.update(
        FAULTLOOP_DATA_DIR=str(tmp_path / "var"),
        FAULTLOOP_CONFIG=str(tmp_path / "none.toml"),
        FAULTLOOP_PORT=str(_free_port()),
        FAULTLOOP_TRAP_PORT=str(_free_port(socket.SOCK_DGRAM)),
        FAULTLOOP_SYSLOG_PORT=str(_free_port(socket.SOCK_DGRAM)),
        COLUMNS="250",
    )
    first = _run_demo_until(env, "order #2: l2_vlan for Contoso Retail on acc2 GigabitEthernet0/3 pushed over SSH")
    assert "order #1: business_internet for Northwind Bank on acc5 GigabitEthernet0/3 pushed over SSH" in first
    assert re.search(r"technician:\s+user tech-ana, password \S+ \(shown once", first)
    assert re.search(r"technician:\s+user tech-ben, password \S+ \(shown once", first)
    assert "paramiko" not in first  # SSH sessions to the lab opened, their INFO lines quieted
    second = _run_demo_until(
        env,
        "order #3: service #1 of Northwind Bank (business_internet) put back on acc5 GigabitEthernet0/3",
        "order #4: service #2 of Contoso Retail (l2_vlan) put back on acc2 GigabitEthernet0/3",
    )
    assert "technician:  user tech-ana (password unchanged from the first demo run)" in second
    assert "shown once" not in second
