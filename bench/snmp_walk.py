"""Full GETBULK walk of one net-snmp ``snmpd``: the faultloop poller vs ``snmpbulkwalk -Cr25``.

    python -m bench.snmp_walk [--rounds 5] [--repetitions 25] [--naive]

In one run, against the same agent (Debian snmpd on a random loopback address):

* reference: ``snmpbulkwalk -v2c -Cr25 -On`` of 1.3.6.1, wall and CPU (child rusage);
* faultloop: ``SnmpClient.walk`` as the poller runs it for v2c (one UDP socket, the strict
  community codec in ``snmpwire.pdu``), wall and process CPU, client made once;
* the same walk through the long-lived pysnmp engine (numeric OIDs, no MIB lookups,
  direct rfc3413 command generator: what DES / AES-192/256 polls still use);
* SNMPv3 authPriv (SHA-256, AES-128): ``snmpbulkwalk -v3 -l authPriv`` vs
  ``SnmpClient.walk`` on faultloop's own USM codec vs the pysnmp engine path;
* with ``--naive``: pysnmp 7 hlapi ``bulk_walk_cmd`` with default options (MIB lookups),
  the starting point the guide measured.

Prints per-round medians and the ratios faultloop/reference (wall, CPU) and us/varbind.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import time

from devices.snmp import SnmpClient, SnmpTarget
from tests.collectors.snmpd import COMMUNITY, V3_AUTH, V3_PRIV, V3_USER, start_snmpd

V3_ARGS = ["-v3", "-l", "authPriv", "-u", V3_USER, "-a", "SHA-256", "-A", V3_AUTH, "-x", "AES", "-X", V3_PRIV]


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def reference(host: str, port: int, env: dict[str, str], reps: int, v3: bool = False) -> tuple[float, float, int]:
    c0, t0 = child_cpu(), time.perf_counter()
    security = V3_ARGS if v3 else ["-v2c", "-c", COMMUNITY]
    out = subprocess.run(
        ["snmpbulkwalk", *security, f"-Cr{reps}", "-On", "-Oq", f"{host}:{port}", ".1.3.6.1"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return time.perf_counter() - t0, child_cpu() - c0, sum(1 for line in out.splitlines() if line.startswith("."))


async def ours(client: SnmpClient, target: SnmpTarget, reps: int) -> tuple[float, float, int]:
    c0, t0 = self_cpu(), time.perf_counter()
    result = await client.walk(target, [(1, 3, 6, 1)], max_repetitions=reps)
    return time.perf_counter() - t0, self_cpu() - c0, len(result)


async def naive(host: str, port: int, reps: int) -> tuple[float, float, int]:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        bulk_walk_cmd,
    )

    c0, t0 = self_cpu(), time.perf_counter()
    engine = SnmpEngine()
    n = 0
    async for err, status, _idx, vbs in bulk_walk_cmd(
        engine,
        CommunityData(COMMUNITY),
        await UdpTransportTarget.create((host, port), timeout=2, retries=1),
        ContextData(),
        0,
        reps,
        ObjectType(ObjectIdentity("1.3.6.1")),
        lexicographicMode=False,
    ):
        if err or status:
            break
        n += len(vbs)
    engine.close_dispatcher()
    return time.perf_counter() - t0, self_cpu() - c0, n


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.snmp_walk")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repetitions", type=int, default=25)
    ap.add_argument("--naive", action="store_true", help="also time naive pysnmp hlapi bulk_walk_cmd (slow)")
    args = ap.parse_args(argv)
    d = start_snmpd()
    try:
        target = SnmpTarget(d.host, d.port, "v2c", community=COMMUNITY, timeout_s=2, retries=1)
        v3 = SnmpTarget(
            d.host, d.port, "v3", user=V3_USER, auth_protocol="SHA-256", auth_key=V3_AUTH, priv_protocol="AES-128",
            priv_key=V3_PRIV, timeout_s=2, retries=1,
        )  # fmt: skip

        async def run() -> dict[str, list[tuple[float, float, int]]]:
            client = SnmpClient()
            engine_path = SnmpClient(native=False)
            names = ["ref", "ours", "engine", "naive", "ref3", "ours3", "engine3"]
            rows: dict[str, list[tuple[float, float, int]]] = {name: [] for name in names}
            await ours(client, target, args.repetitions)  # warm-up: engine config, agent caches
            await ours(engine_path, target, args.repetitions)
            await ours(client, v3, args.repetitions)  # v3 discovery and key localization
            await ours(engine_path, v3, args.repetitions)
            reference(d.host, d.port, d.env, args.repetitions)
            for _ in range(args.rounds):  # interleaved so drift on a shared machine hits all
                rows["ref"].append(reference(d.host, d.port, d.env, args.repetitions))
                rows["ours"].append(await ours(client, target, args.repetitions))
                rows["engine"].append(await ours(engine_path, target, args.repetitions))
                rows["ref3"].append(reference(d.host, d.port, d.env, args.repetitions, v3=True))
                rows["ours3"].append(await ours(client, v3, args.repetitions))
                rows["engine3"].append(await ours(engine_path, v3, args.repetitions))
            engine_path.close()
            if args.naive:
                rows["naive"].append(await naive(d.host, d.port, args.repetitions))
            client.close()
            return rows

        rows = asyncio.run(run())
    finally:
        d.stop()

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in rows[name])

    ref_wall, ref_cpu, ref_n = med("ref", 0), med("ref", 1), int(med("ref", 2))
    our_wall, our_cpu, our_n = med("ours", 0), med("ours", 1), int(med("ours", 2))
    print(f"agent: net-snmp snmpd on {d.host}:{d.port}, full walk of 1.3.6.1, max-repetitions {args.repetitions}")
    print(f"{'client':<28}{'varbinds':>9}{'wall s':>9}{'cpu s':>9}{'us/vb cpu':>11}")
    print(
        f"{'snmpbulkwalk -Cr' + str(args.repetitions):<28}{ref_n:>9}{ref_wall:>9.3f}{ref_cpu:>9.3f}"
        f"{1e6 * ref_cpu / max(ref_n, 1):>11.1f}"
    )
    print(
        f"{'faultloop SnmpClient.walk':<28}{our_n:>9}{our_wall:>9.3f}{our_cpu:>9.3f}"
        f"{1e6 * our_cpu / max(our_n, 1):>11.1f}"
    )
    ew, ec, en = med("engine", 0), med("engine", 1), int(med("engine", 2))
    print(f"{'  same, pysnmp engine path':<28}{en:>9}{ew:>9.3f}{ec:>9.3f}{1e6 * ec / max(en, 1):>11.1f}")
    if rows["naive"]:
        nw, nc, nn = rows["naive"][0]
        print(f"{'pysnmp hlapi (naive)':<28}{nn:>9}{nw:>9.3f}{nc:>9.3f}{1e6 * nc / max(nn, 1):>11.1f}")
        print(f"ratio naive/reference: wall {nw / ref_wall:.2f}x, cpu {nc / ref_cpu:.2f}x")
    print(
        f"ratio pysnmp engine path (numeric OIDs, no MIB, one engine)/reference: wall {ew / ref_wall:.2f}x, "
        f"cpu {ec / ref_cpu:.2f}x"
    )
    print(
        f"ratio faultloop/reference: wall {our_wall / ref_wall:.2f}x, cpu {our_cpu / ref_cpu:.2f}x "
        f"(target wall <= 2x); rounds={args.rounds}"
    )
    print("SNMPv3 authPriv (SHA-256, AES-128), same walk:")
    r3 = [med("ref3", i) for i in range(3)]
    for label, name in (("snmpbulkwalk -v3", "ref3"), ("faultloop SnmpClient.walk", "ours3"),
                        ("  same, pysnmp engine path", "engine3")):  # fmt: skip
        w, c, n = med(name, 0), med(name, 1), int(med(name, 2))
        print(f"{label:<28}{n:>9}{w:>9.3f}{c:>9.3f}{1e6 * c / max(n, 1):>11.1f}")
    o3 = [med("ours3", i) for i in range(3)]
    e3 = [med("engine3", i) for i in range(3)]
    print(f"ratio v3 faultloop/reference: wall {o3[0] / r3[0]:.2f}x, cpu {o3[1] / r3[1]:.2f}x; "
          f"pysnmp engine path/reference: wall {e3[0] / r3[0]:.2f}x, cpu {e3[1] / r3[1]:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
