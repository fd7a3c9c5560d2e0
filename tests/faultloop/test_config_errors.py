"""Every configuration error ends `faultloop serve` with one line naming the file, the entry
and the field, and exit code 2; never a traceback (issue 15, item 17)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from collectors.traps.usm import load_users
from tests.faultloop.test_cli import run

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    e.update(
        FAULTLOOP_DATA_DIR=str(tmp_path / "var"), FAULTLOOP_CONFIG=str(tmp_path / "none.toml"), COLUMNS="300",
        # an address no interface has (TEST-NET-1): were the configuration accepted, the start would
        # fail at the HTTP bind at once instead of serving (root may bind any port)
        FAULTLOOP_HOST="192.0.2.1", FAULTLOOP_PORT="8000", FAULTLOOP_TRAP_PORT="0", FAULTLOOP_SYSLOG_PORT="0",
    )  # fmt: skip
    run(["db", "upgrade"], e)
    return e


def _one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "WARNING" not in line]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_a_users_file_shaped_as_a_bare_list_is_one_line_naming_file_and_shape(env, tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text("- user: noc\n  auth_protocol: SHA\n  auth_password: secret-pass-1\n")
    line = _one_line_error(run(["serve"], {**env, "FAULTLOOP_TRAP_V3_USERS_FILE": str(users)}, check=False))
    assert f"{users}: expected a mapping with a 'users' list" in line and "found list" in line
    assert "secret-pass-1" not in line


def test_a_bad_users_entry_names_the_entry_and_the_field(env, tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text("users:\n  - user: noc\n    auth_protocol: SHA\n    auth_password: secret-pass-1\n"
                     "    priv_protocol: DES3\n    priv_password: secret-pass-2\n")  # fmt: skip
    line = _one_line_error(run(["serve"], {**env, "FAULTLOOP_TRAP_V3_USERS_FILE": str(users)}, check=False))
    assert f"{users}: users entry 1 (noc): field 'priv_protocol'" in line
    assert "secret-pass" not in line


@pytest.mark.parametrize(
    ("setting", "text", "expected"),
    [
        ("FAULTLOOP_TRAP_MAP_FILE", "- 1.3.6.1\n", "expected a mapping with a 'traps' list"),
        ("FAULTLOOP_SYSLOG_RULES_FILE", "rules: [{name: x}]\n", "rules entry 1"),
        ("FAULTLOOP_TRAP_V3_USERS_FILE", "users: [\n", "not valid YAML"),
    ],
)
def test_other_bad_files_are_one_line(env, tmp_path, setting, text, expected):
    path = tmp_path / "file.yaml"
    path.write_text(text)
    line = _one_line_error(run(["serve"], {**env, setting: str(path)}, check=False))
    assert str(path) in line and expected in line


def test_a_bad_service_catalog_stops_the_start_naming_file_and_field(env, tmp_path):
    folder = tmp_path / "catalog" / "l2vpn"
    folder.mkdir(parents=True)
    (folder / "schema.yaml").write_text("fields: {vlan: {type: integr}}\n")
    proc = run(["serve"], {**env, "FAULTLOOP_PROVISIONING_CATALOG_DIR": str(folder.parent)}, check=False)
    line = _one_line_error(proc)
    assert f"{folder}/schema.yaml: field vlan: type must be one of" in line


def test_the_readme_shows_the_users_file_shape_the_code_reads(tmp_path):
    text = README.read_text()
    block = re.search(r"FAULTLOOP_TRAP_V3_USERS_FILE`, a mapping.*?```yaml\n(.*?)```", text, re.S)
    assert block is not None
    path = tmp_path / "users.yaml"
    path.write_text("\n".join(line.removeprefix("  ") for line in block.group(1).splitlines()))
    users = load_users(path)
    assert len(users) == 1 and users.find(bytes.fromhex("80001f8880aabbccdd"), b"noc-v3") is not None


def test_an_http_address_that_cannot_be_had_is_one_line(env):
    import socket

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        # the services start (and log it at INFO) before the HTTP socket is bound: quiet them here
        quiet = {**env, "FAULTLOOP_LOG_LEVEL": "WARNING"}
        proc = run(["serve"], {**quiet, "FAULTLOOP_HOST": "127.0.0.1", "FAULTLOOP_PORT": str(port)}, check=False)
    finally:
        taken.close()
    line = _one_line_error(proc)
    assert f"cannot listen on 127.0.0.1:{port} (FAULTLOOP_HOST/FAULTLOOP_PORT): Address already in use" in line
    line = _one_line_error(run(["serve"], quiet, check=False))  # 192.0.2.1: no interface has it
    assert "cannot listen on 192.0.2.1:8000" in line
