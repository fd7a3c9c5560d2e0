"""`faultloop serve --role all|central|collector`: what each role runs, and the settings of
scale-out refused with one line naming the setting (exit 2)."""

import os
import subprocess
import sys

import pytest

from faultloop.cmd.app import StartupError, build_pipeline
from faultloop.leader import LocalLeadership, PgLeadership
from provisioning.verify import ServiceVerifier
from ticketing.jobs import TicketingService

COLLECTORS = {"snmp-poller", "device directory", "trap receiver", "syslog receiver", "cli-collector"}
SINGLETONS = {"leadership", "alarms", "ticketing", "provisioning"}


def names(pipeline):
    return [service.name for service in pipeline.services]


def test_role_all_runs_everything_as_before(runtime):
    pipeline = build_pipeline(runtime)
    assert runtime.settings.role == "all"
    assert COLLECTORS | SINGLETONS <= set(names(pipeline))
    assert names(pipeline)[0] == "leadership"  # started first, stopped last: the loops stop while it leads
    # PostgreSQL: elected among the instances sharing the database; SQLite (one process): always the leader
    expected = PgLeadership if runtime.engine.dialect.name == "postgresql" else LocalLeadership
    assert isinstance(pipeline.leadership, expected)
    # resolved tickets are verified on their customer services too: provisioning's checker, handed in here
    [tickets] = [s for s in pipeline.services if isinstance(s, TicketingService)]
    assert isinstance(tickets.service_checker, ServiceVerifier) and tickets.service_checker.rt is runtime


def test_role_central_runs_no_collector(runtime):
    runtime.settings.role = "central"
    pipeline = build_pipeline(runtime)
    assert not COLLECTORS & set(names(pipeline)), names(pipeline)
    assert SINGLETONS <= set(names(pipeline))
    assert pipeline.handles is not None  # the API still polls on demand (in the request) and runs orders
    assert pipeline.handles.live_interfaces(1) is None


def test_role_collector_has_no_database_pipeline(runtime):
    runtime.settings.role = "collector"  # it runs through run_collector (build_collector), never on a database
    with pytest.raises(StartupError, match=r"FAULTLOOP_ROLE: collector runs without a database"):
        build_pipeline(runtime)


def test_a_central_with_a_broker_fans_the_live_stream_out(runtime):
    runtime.settings.role = "central"
    runtime.settings.nats_url = "nats://127.0.0.1:4222"
    assert "live stream fan-out" in names(build_pipeline(runtime))
    runtime.settings.nats_url = ""
    assert "live stream fan-out" not in names(build_pipeline(runtime))  # the default: no broker needed


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    e["FAULTLOOP_DATA_DIR"] = str(tmp_path / "var")
    e["FAULTLOOP_CONFIG"] = str(tmp_path / "none.toml")
    e["COLUMNS"] = "300"
    return e


def serve(env, *args, **extra):
    return subprocess.run(
        [sys.executable, "-m", "faultloop.cmd", "serve", *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "extra", "expected"),
    [
        (["--role", "boss"], {}, "FAULTLOOP_ROLE (role): Input should be 'all', 'central' or 'collector'"),
        ([], {"FAULTLOOP_ROLE": "centrall"}, "FAULTLOOP_ROLE (role): Input should be"),
        ([], {"FAULTLOOP_NATS_URL": "http://127.0.0.1:4222"}, "FAULTLOOP_NATS_URL (nats_url): Value error, expected"),
        ([], {"FAULTLOOP_NATS_URL": "nats://"}, "FAULTLOOP_NATS_URL (nats_url)"),
        ([], {"FAULTLOOP_LEADER_LEASE_S": "1"}, "FAULTLOOP_LEADER_LEASE_S (leader_lease_s): Input should be greater"),
        ([], {"FAULTLOOP_LEADER_LEASE_S": "soon"}, "FAULTLOOP_LEADER_LEASE_S (leader_lease_s): Input should be a"),
    ],
)
def test_bad_scale_out_settings_are_one_line_and_exit_2(env, args, extra, expected):
    proc = serve(env, *args, **extra)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_role_collector_without_a_broker_is_one_line_and_exit_2(env):
    subprocess.run([sys.executable, "-m", "faultloop.cmd", "db", "upgrade"], env=env, check=True, capture_output=True)
    proc = serve(env, "--role", "collector")  # no broker configured: the collector cannot work
    assert proc.returncode == 2
    assert "error: FAULTLOOP_NATS_URL: empty; the collector role needs the broker" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_serve_with_an_unreachable_broker_stops_with_one_line(env, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([sys.executable, "-m", "faultloop.cmd", "db", "upgrade"], env=env, check=True, capture_output=True)
    proc = serve(
        env, "--role", "central", "--port", str(port),
        FAULTLOOP_NATS_URL=f"nats://127.0.0.1:{port}", FAULTLOOP_TRAP_ENABLED="false", FAULTLOOP_SYSLOG_ENABLED="false",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"cannot start live stream fan-out: cannot reach NATS at nats://127.0.0.1:{port} (FAULTLOOP_NATS_URL)" in (
        proc.stderr
    )


def test_with_collectors_central_leaves_their_groups_ssh_to_them(runtime):
    """Role all with a broker and a collector key: the collectors' SSH results are consumed, and the
    local SSH schedule skips every group but default (faultloop.cmd.app.served_by_collectors)."""
    from cryptography.fernet import Fernet
    from pydantic import SecretStr

    from collectors.cli_collect import CliCollectorService

    def cli(pipeline):
        return next(s for s in pipeline.services if isinstance(s, CliCollectorService))

    assert cli(build_pipeline(runtime)).remote_group is None  # no broker: everything is local
    runtime.settings.nats_url = "nats://127.0.0.1:4222"
    runtime.settings.collector_key = SecretStr(Fernet.generate_key().decode())
    pipeline = build_pipeline(runtime)
    assert "nats ssh results intake" in names(pipeline)
    remote = cli(pipeline).remote_group
    assert remote is not None and remote("east") and not remote("default")
