"""Run every benchmark: ``python -m bench [name ...]`` (default: all)."""

from __future__ import annotations

import importlib
import sys

BENCHES = [
    "lab_snmp", "traps", "snmp_walk", "config_backup", "fleet", "metrics", "alarms", "orders", "tickets", "console",
    "dashboard_devices", "scale",
]  # fmt: skip


def main(argv: list[str]) -> int:
    names = argv or BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown bench {unknown[0]!r}; available: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    rc = 0
    for name in names:
        print(f"=== bench {name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        rc |= module.main([])
    return rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
