"""Start Debian's net-snmp ``snmpd`` on a random loopback address and high port.

Used by the collector tests and by bench/snmp_walk.py: a v2c community, a v3 authPriv
user (SHA-256 / AES-128) and one v3 user per other security level and auth protocol
(``V3_USERS``), no MIB loading, state in a temporary directory.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SNMPD = "/usr/sbin/snmpd"
COMMUNITY = "fl-test-community"
V3_USER = "fltest"
V3_AUTH = "fl-auth-passphrase"
V3_PRIV = "fl-priv-passphrase"
# user -> (auth protocol, priv protocol, net-snmp's minimum security level for it)
V3_USERS: dict[str, tuple[str | None, str | None, str]] = {
    V3_USER: ("SHA-256", "AES-128", "priv"),
    "flsha1": ("SHA", "AES", "priv"),
    "flsha224": ("SHA-224", "AES-128", "priv"),
    "flsha384": ("SHA-384", None, "auth"),
    "flsha512": ("SHA-512", "AES-128", "priv"),
    "flmd5": ("MD5", "AES-128", "priv"),
    "flnoauth": (None, None, "noauth"),
    # through pysnmp's engine (cryptography's CFB and DES): the path a cryptography upgrade breaks
    "fldes": ("SHA", "DES", "priv"),
    "flaes192": ("SHA-256", "AES-192", "priv"),
    "flaes256": ("SHA-512", "AES-256", "priv"),
}
# net-snmp's createUser names for the privacy protocols (AES-192/256 with the key extension
# Cisco devices use, which is the one pysnmp's CFB192/256 AES speak)
NETSNMP_PRIV = {"AES": "AES", "AES-128": "AES", "DES": "DES", "AES-192": "AES192C", "AES-256": "AES256C"}


@dataclass
class Snmpd:
    host: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def tool(self, tool: str, *args: str) -> str:
        out = subprocess.run([tool, "-On", *args], capture_output=True, text=True, env=self.env, timeout=60, check=True)
        return out.stdout


def _free_port(host: str) -> int:
    for _ in range(50):
        port = random.randint(20000, 60000)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((host, port))
        except OSError:
            continue
        finally:
            s.close()
        return port
    raise RuntimeError("no free UDP port")


def _user_lines(name: str, auth: str | None, priv: str | None, level: str) -> str:
    created = f"createUser {name}"
    if auth:
        created += f' {auth} "{V3_AUTH}"'
    if priv:
        created += f' {NETSNMP_PRIV[priv]} "{V3_PRIV}"'
    return f"{created}\nrouser {name} {level}\n"


def start_snmpd() -> Snmpd:
    host = f"127.{random.randint(40, 60)}.{random.randint(0, 250)}.{random.randint(1, 250)}"
    port = _free_port(host)
    workdir = Path(tempfile.mkdtemp(prefix="fl-snmpd-"))
    conf = workdir / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:{host}:{port}\n"
        f"rocommunity {COMMUNITY} 127.0.0.0/8\n"
        + "".join(_user_lines(name, *spec) for name, spec in V3_USERS.items())
        + "sysName fl-snmpd\n"
        "sysLocation loopback\n"
        f"persistentDir {workdir / 'persist'}\n"
    )
    env = dict(os.environ)
    env["SNMP_PERSISTENT_DIR"] = str(workdir / "persist")
    env["MIBS"] = ""
    env["SNMPCONFPATH"] = str(workdir)
    proc = subprocess.Popen(
        [SNMPD, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(workdir / "pid"), "-M", "/nonexistent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    d = Snmpd(host=host, port=port, workdir=workdir, proc=proc, env=env)
    # Wait until it answers (startup, not a race in the code under test).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = subprocess.run(
            ["snmpget", "-v2c", "-c", COMMUNITY, "-t", "0.5", "-r", "0", f"{host}:{port}", "1.3.6.1.2.1.1.5.0"],
            capture_output=True,
            env=env,
        )
        if r.returncode == 0:
            return d
        if proc.poll() is not None:
            break
    d.stop()
    raise RuntimeError(f"snmpd did not start on {host}:{port}")
