"""No Docker engine runs here: check what can be checked without one."""

import json
import re
import shutil
import subprocess
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


def test_compose_receivers_refuse_unknown_sources_and_need_a_community_list():
    """The published trap port is reachable by anyone: compose must not run it with 'any community'
    and must not attribute (or accept) traps from addresses the inventory does not know."""
    env = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["faultloop"]["environment"]
    assert env["FAULTLOOP_RECEIVER_UNKNOWN_SOURCES"] == "drop"
    # required from .env: compose refuses to start without it (the ${VAR:?message} form)
    assert re.fullmatch(r"\$\{FAULTLOOP_TRAP_COMMUNITIES:\?[^}]+\}", env["FAULTLOOP_TRAP_COMMUNITIES"])
    settings = Settings(
        receiver_unknown_sources=env["FAULTLOOP_RECEIVER_UNKNOWN_SOURCES"],
        receiver_relays="",
        trap_communities="c1,c2",
    )
    assert settings.receiver_unknown_sources == "drop"
    # the embedded default keeps the demo lab working: its devices are in the inventory anyway
    assert Settings.model_fields["receiver_unknown_sources"].default == "accept"


def test_dockerfile_exposes_the_configured_port_and_copies_every_package():
    text = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {Settings.model_fields['port'].default}" in text
    packages = ("faultloop", "snmpwire", "devices", "inventory", "collectors", "alarms", "ticketing", "provisioning")
    packages += ("api",)
    for package in packages:
        assert f"COPY {package} ./{package}" in text
    assert "COPY lab" not in text  # the simulator is not part of the service
    for line in text.splitlines():
        if line.startswith("ENV ") and "FAULTLOOP_" in line:
            for item in line[4:].split():
                key = item.split("=")[0]
                assert key.removeprefix("FAULTLOOP_").lower() in Settings.model_fields, key


# ---------------------------------------------------------------- Prometheus and Grafana


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _prometheus_config() -> dict:
    return yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())


def _bind_mounts(service: dict) -> dict[str, str]:
    """container path -> host path of the service's ./ bind mounts (read-only ones only)."""
    mounts = {}
    for volume in service["volumes"]:
        source, target, *mode = volume.split(":")
        if source.startswith("./"):
            assert mode == ["ro"], f"{volume} should be mounted read-only"
            mounts[target] = source
    return mounts


def test_compose_runs_prometheus_and_grafana_with_named_volumes_and_ports():
    compose = _compose()
    services = compose["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert grafana["image"].startswith("grafana/grafana:")
    assert "9090:9090" in prometheus["ports"] and "3000:3000" in grafana["ports"]
    named = set(compose["volumes"])
    for service in (prometheus, grafana):
        sources = [v.split(":")[0] for v in service["volumes"]]
        assert [s for s in sources if not s.startswith("./")], "a named volume keeps the service's data"
        assert all(s.startswith("./") or s in named for s in sources), sources
    assert "/prometheus" in [v.split(":")[1] for v in prometheus["volumes"] if v.split(":")[0] in named]
    assert "/var/lib/grafana" in [v.split(":")[1] for v in grafana["volumes"] if v.split(":")[0] in named]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert "--storage.tsdb.path=/prometheus" in prometheus["command"]


def test_compose_mounts_files_that_exist_in_the_repository():
    services = _compose()["services"]
    prometheus = _bind_mounts(services["prometheus"])
    assert prometheus == {"/etc/prometheus/prometheus.yml": "./deploy/prometheus/prometheus.yml"}
    grafana = _bind_mounts(services["grafana"])
    assert grafana == {
        "/etc/grafana/provisioning": "./deploy/grafana/provisioning",
        "/etc/grafana/dashboards": "./deploy/grafana/dashboards",
    }
    for source in (*prometheus.values(), *grafana.values()):
        assert (ROOT / source).exists(), source
    assert (ROOT / "deploy/grafana/provisioning/datasources").is_dir()
    assert (ROOT / "deploy/grafana/provisioning/dashboards").is_dir()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith("/etc/grafana/dashboards/")
    assert (ROOT / "deploy/grafana/dashboards" / home.removeprefix("/etc/grafana/dashboards/")).is_file()


def test_grafana_has_no_anonymous_access_and_its_admin_password_comes_from_env():
    env = _compose()["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    # ${VAR:?message}: compose refuses to start without it (no default password)
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")


def test_prometheus_scrapes_the_faultloop_service_on_its_port():
    config = _prometheus_config()
    assert config["global"]["scrape_interval"] == "15s"
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "faultloop"]
    assert job["metrics_path"] == "/metrics"
    compose = _compose()
    port = compose["services"]["faultloop"]["environment"]["FAULTLOOP_PORT"]
    (static,) = job["static_configs"]
    assert static["targets"] == [f"faultloop:{port}"]
    assert "faultloop" in compose["services"]
    assert "faultloop" in compose["services"]["prometheus"]["depends_on"]


def test_prometheus_sends_the_metrics_token_faultloop_expects():
    """FAULTLOOP_METRICS_TOKEN from .env: faultloop requires it, and compose hands the same
    variable to Prometheus as a secret file, the file prometheus.yml reads the bearer token from."""
    compose = _compose()
    env = compose["services"]["faultloop"]["environment"]
    assert env["FAULTLOOP_METRICS_TOKEN"].startswith("${FAULTLOOP_METRICS_TOKEN:?")
    assert "metrics_token" in Settings.model_fields
    (secret_name,) = compose["services"]["prometheus"]["secrets"]
    assert compose["secrets"][secret_name] == {"environment": "FAULTLOOP_METRICS_TOKEN"}
    (job,) = _prometheus_config()["scrape_configs"]
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"] == f"/run/secrets/{secret_name}"
    assert "credentials" not in job["authorization"]  # never the token itself in the file


def test_grafana_provisioning_points_at_prometheus_and_the_mounted_dashboards():
    services = _compose()["services"]
    datasources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    (ds,) = datasources["datasources"]
    assert ds["type"] == "prometheus" and ds["access"] == "proxy"
    port = services["prometheus"]["ports"][0].split(":")[1]
    assert ds["url"] == f"http://prometheus:{port}"
    assert ds["jsonData"]["timeInterval"] == _prometheus_config()["global"]["scrape_interval"]
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/faultloop.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    mounted = _bind_mounts(services["grafana"])
    assert mounted[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    dashboards = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        text = path.read_text()
        assert '"uid": "' + ds["uid"] + '"' in text, path.name
        assert json.loads(text)["uid"]


def test_prometheus_config_passes_promtool(tmp_path):
    """promtool (Debian's prometheus package) checks the whole file, the token file included:
    it runs against a copy whose credentials_file points at a token written here."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (scripts/test-deps.sh installs it)"
    token = tmp_path / "token"
    token.write_text("a-token\n")
    config = _prometheus_config()
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # the file as shipped is at least valid syntax (its token file exists only in the container)
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(ROOT / "deploy/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_select_the_scrape_job_by_its_name():
    (job,) = _prometheus_config()["scrape_configs"]
    selected = set()
    for path in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json")):
        selected |= set(re.findall(r'job\s*=~?\s*\\?"([^"\\]*)', path.read_text()))
    assert selected == {job["job_name"]}
