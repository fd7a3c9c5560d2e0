"""No Docker engine runs here: check what can be checked without one."""

from pathlib import Path

import yaml

from faultloop.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_compose_parses_and_agrees_with_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"faultloop", "postgres"} <= set(services)
    env = services["faultloop"]["environment"]
    fields = set(Settings.model_fields)
    for name in env:
        assert name.startswith("FAULTLOOP_"), name
        assert name.removeprefix("FAULTLOOP_").lower() in fields, f"{name} is not a setting"
    port = int(env["FAULTLOOP_PORT"])
    assert f"{port}:{port}" in services["faultloop"]["ports"]
    assert env["FAULTLOOP_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["FAULTLOOP_DATABASE_URL"]
    assert services["faultloop"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_publishes_the_trap_port_the_receiver_listens_on():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["faultloop"]
    env = service["environment"]
    settings = Settings(trap_host=env["FAULTLOOP_TRAP_HOST"], trap_port=int(env["FAULTLOOP_TRAP_PORT"]))
    assert settings.trap_host == "0.0.0.0"  # noqa: S104 - inside the container, reachable through the mapping
    assert f"162:{settings.trap_port}/udp" in service["ports"]
    # the default (embedded, demo) trap port is the one compose maps to and the image exposes
    assert settings.trap_port == Settings.model_fields["trap_port"].default
    assert f"EXPOSE {settings.trap_port}/udp" in (ROOT / "Dockerfile").read_text()


def test_dockerfile_exposes_the_configured_port_and_copies_every_package():
    text = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {Settings.model_fields['port'].default}" in text
    for package in ("faultloop", "inventory", "collectors", "alarms", "ticketing", "provisioning", "api"):
        assert f"COPY {package} ./{package}" in text
    for line in text.splitlines():
        if line.startswith("ENV ") and "FAULTLOOP_" in line:
            for item in line[4:].split():
                key = item.split("=")[0]
                assert key.removeprefix("FAULTLOOP_").lower() in Settings.model_fields, key
