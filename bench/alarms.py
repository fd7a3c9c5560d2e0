"""Alarm engine benchmark: events -> dedup -> alarm -> database, against a raw executemany.

    python -m bench.alarms [--events 100000] [--new 20000] [--memory 100000] [--no-pg]

In one run on one machine (ratios are the result; absolute figures drift on a shared box):

1. dedup-heavy stream: ``--events`` events over 1,000 reduction keys, in batches of 5,000,
   through ``AlarmCore.process`` (one transaction per batch: decide, dedup, store every
   event, update alarms, journal), versus a raw SQLAlchemy Core ``executemany`` INSERT of
   the same event rows in the same batches -- on SQLite (file, WAL) and PostgreSQL;
2. new alarms: ``--new`` events, every one a new reduction key (insert alarm + event +
   journal), same reference;
3. memory: ``--memory`` active alarms created through the engine and held in its index;
   RSS of this process before and after (VmRSS);
4. storm: the 500-device storm scenario topology (core router down, 512 alarms, 812
   events arriving in batches of 50); wall time to process every batch, the time taken
   by the batch holding the last symptom (that is, the delay until every child is
   correlated), root causes and correlated children at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from alarms.engine import AlarmCore, EngineConfig
from alarms.models import Alarm, EventRecord
from alarms.rules import load_ruleset
from bench.scratch import scratch_postgres
from faultloop.cmd.models import all_metadata
from faultloop.db import make_engine, make_sessionmaker, transaction
from faultloop.events import Event

BATCH = 5000
START = datetime(2026, 1, 1, tzinfo=UTC)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fresh(engine: Engine) -> None:
    all_metadata().drop_all(engine)
    all_metadata().create_all(engine)


def stream(n: int, keys: int) -> list[Event]:
    return [
        Event("trap", f"r{i % keys}", "linkDown", "major", START + timedelta(milliseconds=i), "interface:Gi0/1")
        for i in range(n)
    ]


def rows_of(events: list[Event]) -> list[dict]:
    return [
        {
            "received_at": e.time,
            "time": e.time,
            "source": e.source,
            "device": e.device,
            "managed_object": e.managed_object,
            "event_type": e.event_type,
            "severity": e.severity,
            "probable_cause": "",
            "specific_problem": "",
            "description": "",
            "raw": {},
            "processed": True,
            "action": "dedup",
            "reduction_key": f"link_down:{e.device}:{e.managed_object}",
            "alarm_id": None,
        }
        for e in events
    ]


def run_engine(engine: Engine, events: list[Event]) -> float:
    fresh(engine)
    sessions = make_sessionmaker(engine)
    core = AlarmCore(load_ruleset(), EngineConfig())
    with transaction(sessions) as session:
        core.load(session, START)
    t0 = time.perf_counter()
    for i in range(0, len(events), BATCH):
        chunk = events[i : i + BATCH]
        with transaction(sessions) as session:
            core.process(session, chunk, chunk[-1].time)
    return time.perf_counter() - t0


def run_raw(engine: Engine, events: list[Event]) -> float:
    fresh(engine)
    rows = rows_of(events)
    table = EventRecord.__table__
    t0 = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        with engine.begin() as conn:
            conn.execute(insert(table), rows[i : i + BATCH])
    return time.perf_counter() - t0


def throughput(name: str, engine: Engine, n: int, keys: int) -> None:
    events = stream(n, keys)
    raw = run_raw(engine, events)
    took = run_engine(engine, events)
    with engine.connect() as conn:
        alarms = conn.scalar(select(func.count()).select_from(Alarm)) or 0
        total = conn.scalar(select(func.sum(Alarm.count))) or 0
    assert total == n, (total, n)
    print(
        f"{name:<34} {n:>7} ev  engine {n / took:>9,.0f} ev/s  raw executemany {n / raw:>9,.0f} rows/s"
        f"  ratio {took / raw:5.2f}x  ({alarms} alarms, counts sum {total})",
        flush=True,
    )


def memory(engine: Engine, n: int) -> None:
    fresh(engine)
    sessions = make_sessionmaker(engine)
    core = AlarmCore(load_ruleset(), EngineConfig())
    with transaction(sessions) as session:
        core.load(session, START)
    before = rss_mb()
    events = stream(n, n)
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        with transaction(sessions) as session:
            core.process(session, events[i : i + BATCH], START)
    took = time.perf_counter() - t0
    del events
    # A restart holds the same index, rebuilt from the database.
    core2 = AlarmCore(load_ruleset(), EngineConfig())
    del core
    t1 = time.perf_counter()
    with transaction(sessions) as session:
        core2.load(session, START)
    load_s = time.perf_counter() - t1
    print(
        f"memory: {len(core2.active):,} active alarms held; RSS {before:.0f} MB before, {rss_mb():.0f} MB after"
        f" (limit 500 MB); created at {n / took:,.0f} alarms/s; rebuilt from the DB in {load_s:.2f} s",
        flush=True,
    )


def storm(tmp: Path) -> None:
    from alarms.replay import _load_topology, parse_scenario

    path = Path(__file__).parents[1] / "tests" / "data" / "scenarios" / "storm_500.yaml"
    scenario, rules = parse_scenario(path.read_text(), file=str(path))
    engine = make_engine(f"sqlite:///{tmp / 'storm.db'}")
    all_metadata().create_all(engine)
    sessions = make_sessionmaker(engine)
    from faultloop import clock

    with clock.use(lambda: START), transaction(sessions) as session:
        _load_topology(session, scenario)
    core = AlarmCore(rules, EngineConfig(poller_devices=tuple(scenario.topology.poller)))
    with transaction(sessions) as session:
        core.load(session, START)
    specs = sorted(scenario.events, key=lambda e: e.at)
    events = [Event(s.source, s.device, s.type, s.severity, START + timedelta(seconds=s.at), s.object) for s in specs]
    t0 = time.perf_counter()
    last_batch = 0.0
    for i in range(0, len(events), 50):
        chunk = events[i : i + 50]
        b0 = time.perf_counter()
        with transaction(sessions) as session:
            core.process(session, chunk, chunk[-1].time)
        last_batch = time.perf_counter() - b0
    total = time.perf_counter() - t0
    with engine.connect() as conn:
        roots = conn.scalar(select(func.count()).where(Alarm.root_cause.is_(True), Alarm.state == "active"))
        children = conn.scalar(select(func.count()).where(Alarm.parent_id.is_not(None), Alarm.state == "active"))
        active = conn.scalar(select(func.count()).where(Alarm.state == "active"))
    print(
        f"storm: {len(events)} events, {active} active alarms -> {roots} root cause, {children} correlated children;"
        f" all batches {total:.2f} s, last-symptom batch {last_batch * 1000:.0f} ms (target: correlated within 5 s)",
        flush=True,
    )
    engine.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alarms")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=20_000)
    parser.add_argument("--memory", type=int, default=100_000)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args(argv)
    all_metadata()
    with tempfile.TemporaryDirectory(prefix="faultloop-bench-") as d:
        tmp = Path(d)
        sqlite = make_engine(f"sqlite:///{tmp / 'bench.db'}")
        throughput("SQLite dedup-heavy (1,000 keys)", sqlite, args.events, 1000)
        throughput("SQLite new alarms (all distinct)", sqlite, args.new, args.new)
        if not args.no_pg:
            with scratch_postgres("bench_alarms") as url:
                if url is not None:
                    engine = make_engine(url)
                    try:
                        throughput("PostgreSQL dedup-heavy (1,000 keys)", engine, args.events, 1000)
                        throughput("PostgreSQL new alarms (all distinct)", engine, args.new, args.new)
                    finally:
                        engine.dispose()
        storm(tmp)
        memory(sqlite, args.memory)
        sqlite.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
