"""Lab SNMP benchmark: 500 generated devices in one process, walked with net-snmp.

    python -m bench.lab_snmp [--devices 500] [--walks 30] [--no-snmpd]

What it does, in one run on one machine (ratios, not absolute times, are the result):

1. starts ``generate_topology(N)`` in a child process (``serve`` sub-command), all
   devices bound, SSH off; records start-up time and RSS;
2. walks the ifTable of the device with the most interfaces ``--walks`` times with
   ``snmpbulkwalk -v2c -Cr25`` (and v3 authPriv), while the other devices idle:
   median / p95 wall time per walk, and the agent process CPU per walk (from
   /proc/<pid>/stat), i.e. the server's share independent of client start-up;
3. a client-only baseline: ``snmpget`` of sysUpTime (1 round trip) to show how much
   of a walk's wall time is net-snmp process start-up;
4. the same ifTable walk and a full walk against Debian ``snmpd`` started on a
   loopback port (the reference), giving per-varbind ratios;
5. sweeps the ifTable of every device (8 in parallel) so every device's OID index is
   built, then records RSS again (the worst case for memory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- server side


def serve(n: int, base: str, port: int) -> None:
    from lab.network import LabNetwork
    from lab.topology import generate_topology

    async def run() -> None:
        t0 = time.perf_counter()
        topo = generate_topology(n, base_address=base, snmp_port=port)
        net = LabNetwork(topo, ssh=False)
        await net.start()
        biggest = max(topo.devices, key=lambda d: len(d.interfaces))
        print(f"READY {time.perf_counter() - t0:.3f} {biggest.address} {len(biggest.interfaces)}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
        await net.stop()

    asyncio.run(run())


# ---------------------------------------------------------------- client side


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_tool(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {out.stderr.strip()}")
    return dt, out.stdout


def timed_walks(args: list[str], env: dict[str, str], walks: int, pid: int | None) -> dict[str, float]:
    _, out = run_tool(args, env)  # warm-up (builds the OID index, v3 key localization)
    varbinds = len([ln for ln in out.splitlines() if ln.strip()])
    times = []
    c0 = cpu_s(pid) if pid else 0.0
    for _ in range(walks):
        dt, _ = run_tool(args, env)
        times.append(dt)
    c1 = cpu_s(pid) if pid else 0.0
    times.sort()
    return {
        "varbinds": varbinds,
        "median_ms": statistics.median(times) * 1000,
        "p95_ms": times[max(0, int(len(times) * 0.95) - 1)] * 1000,
        "server_cpu_ms": (c1 - c0) / walks * 1000 if pid else float("nan"),
    }


def start_snmpd(tmp: Path, address: str, port: int) -> subprocess.Popen | None:
    snmpd = shutil.which("snmpd") or ("/usr/sbin/snmpd" if Path("/usr/sbin/snmpd").exists() else None)
    if snmpd is None:
        return None
    conf = tmp / "snmpd.conf"
    conf.write_text("rocommunity public 127.0.0.0/8\n")
    env = dict(os.environ, SNMP_PERSISTENT_DIR=str(tmp / "snmpd-persist"), MIBS="")
    proc = subprocess.Popen(
        [snmpd, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(tmp / "snmpd.pid"), f"udp:{address}:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    for _ in range(50):
        try:
            run_tool(
                ["snmpget", "-v2c", "-c", "public", "-t", "0.2", "-r", "0", f"{address}:{port}", "1.3.6.1.2.1.1.3.0"],
                env,
            )
            return proc
        except RuntimeError:
            time.sleep(0.1)
    proc.terminate()
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.lab_snmp", description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", nargs="?", default="bench", choices=["bench", "serve"])
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--walks", type=int, default=30)
    ap.add_argument("--port", type=int, default=16400)
    ap.add_argument("--base", default=None, help="first device address (default: random 127.40-49.x.1)")
    ap.add_argument("--no-snmpd", action="store_true", help="skip the Debian snmpd reference")
    args = ap.parse_args(argv)
    base = args.base or f"127.{random.randint(40, 49)}.{random.randint(0, 200)}.1"
    if args.cmd == "serve":
        serve(args.devices, base, args.port)
        return 0
    if shutil.which("snmpbulkwalk") is None:
        print("lab_snmp: net-snmp tools (snmpbulkwalk) not installed; skipping")
        return 0

    env = dict(os.environ, MIBS="")
    tmp = Path(tempfile.mkdtemp(prefix="bench-lab-"))
    env["SNMP_PERSISTENT_DIR"] = str(tmp / "client-persist")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.lab_snmp",
            "serve",
            "--devices",
            str(args.devices),
            "--base",
            base,
            "--port",
            str(args.port),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().split()
        if not line or line[0] != "READY":
            print("lab_snmp: lab failed to start", file=sys.stderr)
            return 1
        startup_s, address, n_ifs = float(line[1]), line[2], int(line[3])
        pid = server.pid
        rss_start = rss_mb(pid)
        target = f"{address}:{args.port}"
        print(f"lab: {args.devices} devices up in {startup_s:.2f} s, RSS {rss_start:.0f} MB")
        print(f"walk target: {target} ({n_iface_label(n_ifs)})")

        v3 = [
            "-v3",
            "-l",
            "authPriv",
            "-u",
            "labv3",
            "-a",
            "SHA-256",
            "-A",
            "lab-auth-pass",
            "-x",
            "AES",
            "-X",
            "lab-priv-pass",
        ]
        results = {}
        results["lab ifTable v2c"] = timed_walks(
            ["snmpbulkwalk", "-v2c", "-c", "public", "-Cr25", "-On", target, "1.3.6.1.2.1.2.2"], env, args.walks, pid
        )
        results["lab ifTable v3 authPriv"] = timed_walks(
            ["snmpbulkwalk", *v3, "-Cr25", "-On", target, "1.3.6.1.2.1.2.2"], env, args.walks, pid
        )
        results["lab full walk v2c"] = timed_walks(
            ["snmpbulkwalk", "-v2c", "-c", "public", "-Cr25", "-On", target, ".1"], env, max(5, args.walks // 3), pid
        )
        results["client baseline (1 snmpget)"] = timed_walks(
            ["snmpget", "-v2c", "-c", "public", "-On", target, "1.3.6.1.2.1.1.3.0"], env, args.walks, pid
        )

        snmpd = None if args.no_snmpd else start_snmpd(tmp, "127.39.0.1", args.port)
        if snmpd is not None:
            try:
                ref = f"127.39.0.1:{args.port}"
                results["snmpd ifTable v2c"] = timed_walks(
                    ["snmpbulkwalk", "-v2c", "-c", "public", "-Cr25", "-On", ref, "1.3.6.1.2.1.2.2"],
                    env,
                    args.walks,
                    snmpd.pid,
                )
                results["snmpd full walk v2c"] = timed_walks(
                    ["snmpbulkwalk", "-v2c", "-c", "public", "-Cr25", "-On", ref, ".1"],
                    env,
                    max(5, args.walks // 3),
                    snmpd.pid,
                )
            finally:
                snmpd.terminate()
                snmpd.wait()

        # build every device's index: walk each ifTable, 8 clients at a time
        from concurrent.futures import ThreadPoolExecutor

        from lab.topology import address_at

        t0 = time.perf_counter()
        c0 = cpu_s(pid)

        def sweep(i: int) -> None:
            run_tool(
                [
                    "snmpbulkwalk",
                    "-v2c",
                    "-c",
                    "public",
                    "-Cr25",
                    "-On",
                    f"{address_at(base, i)}:{args.port}",
                    "1.3.6.1.2.1.2.2",
                ],
                env,
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(sweep, range(args.devices)))
        sweep_s = time.perf_counter() - t0
        sweep_cpu = cpu_s(pid) - c0
        rss_end = rss_mb(pid)
        c0 = cpu_s(pid)
        tp_resp, tp_timeouts, tp_s = throughput(base, args.port, args.devices, rounds=10)
        tp_cpu = cpu_s(pid) - c0

        print()
        print(f"{'walk':<30} {'varbinds':>8} {'median ms':>10} {'p95 ms':>8} {'agent CPU ms':>13} {'us/varbind':>11}")
        for name, r in results.items():
            per_vb = r["server_cpu_ms"] * 1000 / r["varbinds"] if r["varbinds"] else float("nan")
            print(
                f"{name:<30} {r['varbinds']:>8} {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f} "
                f"{r['server_cpu_ms']:>13.2f} {per_vb:>11.1f}"
            )
        if "snmpd full walk v2c" in results:
            lab_full, ref_full = results["lab full walk v2c"], results["snmpd full walk v2c"]
            lab_vb = lab_full["server_cpu_ms"] / lab_full["varbinds"]
            ref_vb = ref_full["server_cpu_ms"] / ref_full["varbinds"]
            print(f"\nratio lab/snmpd agent CPU per varbind (full walks): {lab_vb / ref_vb:.2f}x")
            lab_w = lab_full["median_ms"] / lab_full["varbinds"]
            ref_w = ref_full["median_ms"] / ref_full["varbinds"]
            print(f"ratio lab/snmpd wall time per varbind (full walks, client included): {lab_w / ref_w:.2f}x")
        print(
            f"\nsweep: ifTable of all {args.devices} devices (8 parallel clients) in {sweep_s:.1f} s, "
            f"agent CPU {sweep_cpu:.2f} s"
        )
        print(f"RSS: {rss_start:.0f} MB after start, {rss_end:.0f} MB after every device's index was built")
        print(
            f"throughput (raw UDP client, 32 in flight, interface-poll GETBULK to every device x10): "
            f"{tp_resp / tp_s:.0f} responses/s, agent CPU {tp_cpu / max(tp_resp, 1) * 1e6:.0f} us per response, "
            f"{tp_timeouts} timeouts"
        )
        return 0
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def throughput(base: str, port: int, n_devices: int, rounds: int, window: int = 32) -> tuple[int, int, float]:
    """Raw UDP client: every device gets one GETBULK per round (ifOperStatus, ifHCIn/OutOctets,
    ifInErrors, max-repetitions 25: a poller's interface poll), ``window`` requests in flight.
    Returns (responses, timeouts, seconds)."""
    import select
    import socket

    from lab.topology import address_at
    from snmpwire import ber

    cols = [
        (1, 3, 6, 1, 2, 1, 2, 2, 1, 8),
        (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6),
        (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10),
        (1, 3, 6, 1, 2, 1, 2, 2, 1, 14),
    ]
    vbl = ber.enc_seq(*(ber.enc_seq(ber.enc_oid(c), b"\x05\x00") for c in cols))

    def request(reqid: int) -> bytes:
        pdu = ber.tlv(ber.GETBULK, ber.enc_int(reqid) + ber.enc_int(0) + ber.enc_int(25) + vbl)
        return ber.enc_seq(ber.enc_int(1), ber.enc_octets(b"public"), pdu)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setblocking(False)
    targets = [(address_at(base, i), port) for i in range(n_devices)] * rounds
    pending: dict[int, float] = {}
    responses = timeouts = 0
    nxt = 0
    t0 = time.perf_counter()
    while nxt < len(targets) or pending:
        while nxt < len(targets) and len(pending) < window:
            sock.sendto(request(nxt + 1), targets[nxt])
            pending[nxt + 1] = time.perf_counter()
            nxt += 1
        ready, _, _ = select.select([sock], [], [], 0.5)
        if not ready:
            now = time.perf_counter()
            for rid in [r for r, ts in pending.items() if now - ts > 2]:
                del pending[rid]
                timeouts += 1
            continue
        while True:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                break
            s0, e0 = ber.expect(data, 0, len(data), ber.SEQUENCE)
            _, p = ber.read_int(data, s0, e0)
            _, p = ber.read_octets(data, p, e0)
            _, ps, pe = ber.read_tlv(data, p, e0)
            rid, _ = ber.read_int(data, ps, pe)
            if pending.pop(rid, None) is not None:
                responses += 1
    sock.close()
    return responses, timeouts, time.perf_counter() - t0


def n_iface_label(n: int) -> str:
    return f"{n} interfaces, {22 * n} ifTable varbinds"


if __name__ == "__main__":
    raise SystemExit(main())
