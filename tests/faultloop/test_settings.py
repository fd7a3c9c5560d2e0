import pytest

from faultloop.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("FAULTLOOP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FAULTLOOP_CONFIG", str(tmp_path / "faultloop.toml"))


def test_defaults():
    s = load_settings()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.effective_database_url == "sqlite:///var/faultloop.db"
    assert str(s.secret_key_file) == "var/secret.key"


def test_environment_and_toml(monkeypatch, tmp_path):
    (tmp_path / "faultloop.toml").write_text('port = 9001\nlog_level = "DEBUG"\n')
    s = load_settings()
    assert s.port == 9001 and s.log_level == "DEBUG"
    monkeypatch.setenv("FAULTLOOP_PORT", "9002")
    assert load_settings().port == 9002  # environment beats the file


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"FAULTLOOP_PORT": "70000"}, "FAULTLOOP_PORT (port)"),
        (
            {"FAULTLOOP_DATABASE_URL": "mysql://x"},
            "FAULTLOOP_DATABASE_URL (database_url): Value error, expected a sqlite",
        ),
        ({"FAULTLOOP_LOG_LEVEL": "LOUD"}, "FAULTLOOP_LOG_LEVEL"),
        (
            {"FAULTLOOP_LOGIN_RATE_PER_SOURCE": "lots"},
            "FAULTLOOP_LOGIN_RATE_PER_SOURCE (login_rate_per_source): Value error, expected one rate",
        ),
        ({"FAULTLOOP_LOGIN_RATE_PER_USER": "0/minute"}, "FAULTLOOP_LOGIN_RATE_PER_USER (login_rate_per_user)"),
        ({"FAULTLOOP_LOGIN_RATE_PER_USER": "1/minute;5/hour"}, "FAULTLOOP_LOGIN_RATE_PER_USER"),
        ({"FAULTLOOP_LOGIN_CONCURRENCY": "0"}, "FAULTLOOP_LOGIN_CONCURRENCY (login_concurrency)"),
        ({"FAULTLOOP_ALARM_STREAM_MAX_PER_USER": "0"}, "FAULTLOOP_ALARM_STREAM_MAX_PER_USER"),
        ({"FAULTLOOP_ALARM_STREAM_MAX_TOTAL": "-1"}, "FAULTLOOP_ALARM_STREAM_MAX_TOTAL"),
        ({"FAULTLOOP_NATS_URL": "http://127.0.0.1:4222"}, "FAULTLOOP_NATS_URL (nats_url): Value error, expected nats://"),
        ({"FAULTLOOP_NATS_STREAM_PREFIX": "a.b"}, "FAULTLOOP_NATS_STREAM_PREFIX (nats_stream_prefix): Value error"),
        ({"FAULTLOOP_NATS_SPOOL_MAX_MESSAGES": "5"}, "FAULTLOOP_NATS_SPOOL_MAX_MESSAGES"),
        ({"FAULTLOOP_POLL_MAX_INTERFACES": "0"}, "FAULTLOOP_POLL_MAX_INTERFACES (poll_max_interfaces)"),
        ({"FAULTLOOP_SSH_MAX_OUTPUT_BYTES": "100"}, "FAULTLOOP_SSH_MAX_OUTPUT_BYTES (ssh_max_output_bytes)"),
    ],
)
def test_invalid_values_name_the_setting(monkeypatch, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert expected in str(exc.value)


def test_unknown_key_in_toml_is_refused(tmp_path):
    (tmp_path / "faultloop.toml").write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="FAULTLOOP_PROT"):
        load_settings()


def test_every_setting_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"FAULTLOOP_{name.upper()}" in readme, name
