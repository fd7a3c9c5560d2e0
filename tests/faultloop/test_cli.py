"""The CLI as an operator runs it: a real process, a real SQLite file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from tests.inventory.test_files import GOOD


def run(args, env, stdin=None, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "faultloop.cmd", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    e["FAULTLOOP_DATA_DIR"] = str(tmp_path / "var")
    e["FAULTLOOP_CONFIG"] = str(tmp_path / "none.toml")
    e["COLUMNS"] = "200"
    run(["db", "upgrade"], e)
    return e


def test_user_token_and_scripts(env):
    run(["user", "add", "alice", "--role", "noc", "--password-stdin"], env, stdin="a long password\n")
    token = run(["token", "create", "alice"], env).stdout
    assert token.startswith("flt_") and token.count("\n") == 1 and len(token.strip()) > 40
    proc = run(["user", "add", "bob", "--role", "wizard", "--password-stdin"], env, stdin="x" * 12, check=False)
    assert proc.returncode == 2 and "role: expected one of admin, noc" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run(
        ["user", "add", "alice", "--role", "noc", "--password-stdin"], env, stdin="another long one\n", check=False
    )
    assert proc.returncode == 2 and "already exists" in proc.stderr
    proc = run(["user", "add", "desk", "--role", "servicedesk", "--no-password"], env)
    assert "user desk (servicedesk) created" in proc.stderr


def test_user_disable_role_password_and_tokens(env):
    run(["user", "add", "root", "--role", "admin", "--no-password"], env)
    run(["user", "add", "alice", "--role", "noc", "--password-stdin"], env, stdin="a long password\n")
    run(["token", "create", "alice", "--name", "script"], env)
    listed = run(["token", "list", "alice"], env).stdout
    assert "script" in listed and "api" in listed and "flt_" in listed  # the prefix, never the token
    proc = run(["user", "role", "alice", "viewer"], env)
    assert "alice is now viewer" in proc.stderr
    proc = run(["user", "password", "alice", "--password-stdin"], env, stdin="another long password\n")
    assert "password of alice set, 0 session(s) revoked" in proc.stderr
    assert "another long password" not in proc.stdout + proc.stderr
    proc = run(["user", "disable", "alice"], env)
    assert "alice disabled, 1 token(s) revoked" in proc.stderr
    assert "True" in run(["user", "list"], env).stdout
    run(["user", "enable", "alice"], env)
    token = run(["token", "create", "alice"], env).stdout.strip()
    assert token.startswith("flt_")
    assert "token 2 revoked" in run(["token", "revoke", "2"], env).stderr
    for args, stdin, expected in [
        (["user", "role", "nobody", "noc"], None, "user 'nobody' not found"),
        (["user", "role", "alice", "wizard"], None, "role: expected one of admin"),
        (["user", "password", "alice", "--password-stdin"], "short\n", "password: expected at least 10"),
        (["user", "disable", "root"], None, "the last enabled admin"),
        (["user", "role", "root", "noc"], None, "the last enabled admin"),
        (["token", "revoke", "999"], None, "token 999 not found"),
    ]:
        proc = run(args, env, stdin=stdin, check=False)
        assert proc.returncode == 2 and expected in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_inventory_import_export_and_devices(env, tmp_path):
    f = tmp_path / "inv.yaml"
    f.write_text(GOOD)
    proc = run(["inventory", "import", str(f)], env)
    assert "2 device(s) created" in proc.stderr
    listed = json.loads(run(["device", "list", "--json"], env).stdout)
    assert [d["hostname"] for d in listed] == ["acc1", "core1"]
    assert "lab-admin" not in json.dumps(listed)
    shown = json.loads(run(["device", "show", "core1", "--json"], env).stdout)
    assert shown["interfaces"][0]["name"] == "Gi0/1"
    assert "public" not in json.dumps(shown)
    exported = yaml.safe_load(run(["inventory", "export"], env).stdout)
    assert exported["devices"][1]["snmp"]["community"] == "<redacted>"
    run(
        ["device", "add", "edge9", "--address", "127.0.1.9", "--role", "cpe", "--snmp-version", "v2c"],
        env,
        stdin="edge-community\n",
    )
    assert len(json.loads(run(["device", "list", "--json"], env).stdout)) == 3
    proc = run(["device", "add", "edge9", "--address", "127.0.1.9", "--role", "cpe"], env, check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    proc = run(["device", "add", "edge10", "--address", "1.2.3", "--role", "cpe"], env, check=False)
    assert proc.returncode == 2 and "address" in proc.stderr


def test_bad_import_names_line_and_imports_nothing(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("role: access", "role: acess"))
    proc = run(["inventory", "import", str(bad)], env, check=False)
    assert proc.returncode == 2
    assert "line 17: devices[1] (acc1) field 'role'" in proc.stderr
    # a semantic error found after some rows were written: still nothing imported
    bad.write_text(GOOD.replace("b_interface: Gi0/1}", "b_interface: Gi7/7}"))
    proc = run(["inventory", "import", str(bad)], env, check=False)
    assert proc.returncode == 2 and "links[0]" in proc.stderr and "Gi7/7" in proc.stderr
    assert json.loads(run(["device", "list", "--json"], env).stdout) == []


def test_secrets_rotate_keeps_every_secret_readable(env, tmp_path):
    f = tmp_path / "inv.yaml"
    f.write_text(GOOD)
    run(["inventory", "import", str(f)], env)
    key_file = Path(env["FAULTLOOP_DATA_DIR"]) / "secret.key"
    old = key_file.read_bytes()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    proc = run(["secrets", "rotate"], env)
    assert "re-encrypted 4 secret(s)" in proc.stderr
    assert key_file.read_bytes() != old and len(key_file.read_bytes().split()) == 1
    exported = yaml.safe_load(run(["inventory", "export", "--with-secrets"], env).stdout)
    acc = next(d for d in exported["devices"] if d["hostname"] == "acc1")
    assert acc["snmp"]["priv_key"] == "lab-priv-pass"


def test_rotate_with_env_keys(env, tmp_path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    e = {**env, "FAULTLOOP_SECRET_KEY": old, "FAULTLOOP_DATA_DIR": str(tmp_path / "v2")}
    run(["db", "upgrade"], e)
    f = tmp_path / "inv.yaml"
    f.write_text(GOOD)
    run(["inventory", "import", str(f)], e)
    proc = run(["secrets", "rotate"], e, check=False)
    assert proc.returncode == 2 and "NEW,OLD" in proc.stderr
    run(["secrets", "rotate"], {**e, "FAULTLOOP_SECRET_KEY": f"{new},{old}"})
    exported = run(["inventory", "export", "--with-secrets"], {**e, "FAULTLOOP_SECRET_KEY": new}).stdout
    assert "lab-auth-pass" in exported
    proc = run(["inventory", "export", "--with-secrets"], e, check=False)
    assert proc.returncode == 2 and "cannot be decrypted" in proc.stderr


def test_unreachable_database_is_a_clear_error(env):
    e = {**env, "FAULTLOOP_DATABASE_URL": "postgresql+psycopg://nobody:hunter2@127.0.0.1:1/none"}
    proc = run(["device", "list"], e, check=False)
    assert proc.returncode == 2
    assert "cannot reach the database at postgresql+psycopg://nobody:***@127.0.0.1:1/none" in proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    proc = run(["serve"], e, check=False)
    assert proc.returncode == 2 and "cannot reach the database" in proc.stderr


def test_invalid_setting_names_the_setting(env):
    proc = run(["device", "list"], {**env, "FAULTLOOP_PORT": "99999"}, check=False)
    assert proc.returncode == 2 and "FAULTLOOP_PORT" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    e["FAULTLOOP_DATA_DIR"] = str(tmp_path / "fresh")
    proc = run(["serve"], e, check=False)
    # rich wraps long messages at the terminal width; compare with whitespace collapsed
    assert proc.returncode == 2 and "faultloop db upgrade" in " ".join(proc.stderr.split())


def test_serve_with_a_taken_trap_port_is_a_clear_error(env):
    import socket

    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        e = {**env, "FAULTLOOP_TRAP_PORT": str(port), "FAULTLOOP_PORT": "1", "FAULTLOOP_SYSLOG_ENABLED": "false"}
        proc = run(["serve"], e, check=False)
    finally:
        taken.close()
    assert proc.returncode == 2, proc.stderr
    assert "cannot start trap receiver" in proc.stderr and "Traceback" not in proc.stderr


def test_secrets_rotate_refuses_while_a_service_runs(env, tmp_path):
    """Issue 15 item 7: a running server loaded the keys once; rotating under it breaks it."""
    from faultloop.runtime import service_running
    from faultloop.settings import Settings

    f = tmp_path / "inv.yaml"
    f.write_text(GOOD)
    run(["inventory", "import", str(f)], env)
    key_file = Path(env["FAULTLOOP_DATA_DIR"]) / "secret.key"
    old = key_file.read_bytes()
    # the lock `faultloop serve` holds for its lifetime (a flock: another process sees it)
    with service_running(Settings(data_dir=Path(env["FAULTLOOP_DATA_DIR"]))):
        proc = run(["secrets", "rotate"], env, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "a faultloop service is running on" in proc.stderr
    assert "stop it, run `faultloop secrets rotate`, then start it again" in proc.stderr
    assert key_file.read_bytes() == old  # nothing rotated
    exported = yaml.safe_load(run(["inventory", "export", "--with-secrets"], env).stdout)
    assert next(d for d in exported["devices"] if d["hostname"] == "acc1")["snmp"]["priv_key"] == "lab-priv-pass"
    # the service stopped (lock released): the rotation goes through
    assert "re-encrypted 4 secret(s)" in run(["secrets", "rotate"], env).stderr
