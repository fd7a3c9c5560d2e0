"""faultloop rules / alarm / maintenance commands as an operator runs them: real processes, a real SQLite file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alarms.schemas import EventIn
from alarms.service import store_events
from faultloop import clock
from faultloop.db import make_engine, make_sessionmaker, transaction

SCENARIOS = Path(__file__).parents[1] / "data" / "scenarios"


def run(args, env, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "faultloop.cmd", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    e["FAULTLOOP_DATA_DIR"] = str(tmp_path / "var")
    e["FAULTLOOP_CONFIG"] = str(tmp_path / "none.toml")
    e["COLUMNS"] = "250"
    run(["db", "upgrade"], e)
    return e


def test_rules_test_passes_and_fails_like_promtool(env, tmp_path):
    proc = run(
        ["rules", "test", str(SCENARIOS / "device_down_20_downstream.yaml"), str(SCENARIOS / "flapping.yaml")], env
    )
    assert proc.stdout.count("PASS") == 2
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text((SCENARIOS / "device_reboot.yaml").read_text().replace("children: 1", "children: 3"))
    proc = run(["rules", "test", str(wrong)], env, check=False)
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "device_down:acc1:: children expected 3, got 1" in proc.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: b\nevents:\n  - {at: 1, device: a, type: x, colour: red}\nexpect: [{at: 2}]\n")
    proc = run(["rules", "test", str(broken)], env, check=False)
    assert proc.returncode == 2
    assert f"{broken}: rule 'events[0]': field 'colour'" in proc.stderr


def test_rules_check(env, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("mappings:\n  - {name: psu, raise: [psu_failed], clear: [psu_ok], alarm_type: psu}\n")
    assert "7 mapping rules" in run(["rules", "check", str(good)], env).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds:\n  - {name: cpu, metric: cpu, op: '>', value: 90, for_s: -1}\n")
    proc = run(["rules", "check", str(bad)], env, check=False)
    assert proc.returncode == 2 and f"{bad}: rule 'cpu': field 'for_s'" in proc.stderr


def test_alarm_and_maintenance_commands(env, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'faultloop.db'}")
    with transaction(make_sessionmaker(engine)) as session:
        store_events(
            session,
            [EventIn(device="r1", event_type="linkDown", severity="major", managed_object="interface:Gi0/1")],
            now=clock.now(),
        )
    # The engine processes the durable queue (as the service would).
    from alarms.bus import AlarmBus
    from alarms.runner import AlarmEngine
    from faultloop.cmd.app import build_runtime
    from faultloop.settings import Settings

    rt = build_runtime(Settings(data_dir=tmp_path / "var"))
    AlarmEngine(rt, AlarmBus()).run_once()

    listed = json.loads(run(["alarm", "list", "--json"], env).stdout)
    assert [(a["device"], a["alarm_type"], a["state"]) for a in listed] == [("r1", "link_down", "active")]
    alarm_id = listed[0]["id"]
    run(["alarm", "ack", str(alarm_id)], env)
    run(["alarm", "comment", str(alarm_id), "carrier ticket 4711"], env)
    run(["alarm", "unack", str(alarm_id)], env)
    run(["alarm", "ack", str(alarm_id)], env)
    run(["alarm", "severity", str(alarm_id), "critical"], env)
    proc = run(["alarm", "severity", str(alarm_id), "dire"], env, check=False)
    assert proc.returncode == 2 and "severity: expected critical" in proc.stderr
    assert json.loads(run(["alarm", "list", "--json"], env).stdout)[0]["severity"] == "critical"
    proc = run(["alarm", "ack", str(alarm_id)], env, check=False)
    assert proc.returncode == 2 and "already acknowledged by cli" in proc.stderr
    run(["alarm", "clear", str(alarm_id), "--reason", "repaired"], env)
    assert run(["alarm", "list", "--json"], env).stdout.strip() == "[]"
    assert "ack cli" in run(["alarm", "list", "--state", "all"], env).stdout
    proc = run(["alarm", "clear", "424242"], env, check=False)
    assert proc.returncode == 2 and "alarm 424242 not found" in proc.stderr

    run(
        [
            "maintenance",
            "add",
            "pop1 night",
            "--start",
            "2026-01-01T00:00:00Z",
            "--rrule",
            "FREQ=DAILY",
            "--duration-s",
            "3600",
            "--site",
            "pop1",
        ],
        env,
    )
    proc = run(
        ["maintenance", "add", "bad", "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-02T00:00:00Z"],
        env,
        check=False,
    )
    assert proc.returncode == 2 and "at least one of devices, sites, tags, interfaces" in proc.stderr
    windows = json.loads(run(["maintenance", "list", "--json"], env).stdout)
    assert [(w["name"], w["rrule"], w["sites"]) for w in windows] == [("pop1 night", "FREQ=DAILY", ["pop1"])]
