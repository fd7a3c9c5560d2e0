"""No Docker engine runs here: check what can be checked without one."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from faultloop.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


CENTRALS = ("central-1", "central-2")
FAULTLOOP_SERVICES = ("migrate", *CENTRALS, "collector")  # the services running the faultloop image
# what the .env file would give the ${VAR} references, to build a Settings object from a service
ENV_SAMPLES = {
    "POSTGRES_PASSWORD": "pg-secret",
    "NATS_PASSWORD": "nats-secret",
    "FAULTLOOP_SECRET_KEY": "x0OXAg2y1yzNHUvhxRDmIV71fd-Y0AGf-V25d2EYz4I=",
    "FAULTLOOP_COLLECTOR_KEY": "Ge-V-6cOmYETc79Zy2a9Hgg6v0nYmcuzgGWxHSdTJjI=",
    "FAULTLOOP_METRICS_TOKEN": "a-long-token",
    "FAULTLOOP_TRAP_COMMUNITIES": "c1,c2",
}
REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?]([^}]*))?\}")


def _interpolate(value: str) -> str:
    """A compose value with its ${VAR}, ${VAR:-default} and ${VAR:?message} references filled in."""

    def one(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(2)
        if name in ENV_SAMPLES:
            return ENV_SAMPLES[name]
        assert ":?" not in match.group(0), f"{name} is required but has no sample in ENV_SAMPLES"
        return rest or ""

    return REFERENCE.sub(one, value)


def _settings_of(service: dict) -> Settings:
    """The Settings object the service's environment makes (a value no setting accepts fails here)."""
    env = service["environment"]
    values = {name.removeprefix("FAULTLOOP_").lower(): _interpolate(str(value)) for name, value in env.items()}
    return Settings(**values)


def _published(service: dict, protocol: str = "tcp") -> dict[int, int]:
    """container port -> host port of the service's port mappings of ``protocol``."""
    out = {}
    for mapping in service.get("ports", []):
        ports, _, proto = mapping.partition("/")
        host, container = ports.split(":")
        if (proto or "tcp") == protocol:
            out[int(container)] = int(host)
    return out


def test_compose_runs_nats_two_centrals_on_one_database_and_a_collector():
    services = _compose()["services"]
    assert {"postgres", "nats", "migrate", *CENTRALS, "collector"} <= set(services)
    assert "faultloop" not in services  # the single-process service became the two centrals
    for name in CENTRALS:
        service = services[name]
        assert service["command"] == ["faultloop", "serve", "--role", "central"], name
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["nats"]["condition"] == "service_healthy"
    assert services["collector"]["command"] == ["faultloop", "serve", "--role", "collector"]
    # migrations run once, before the centrals, on the centrals' database
    assert services["migrate"]["command"] == ["faultloop", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # one database for both centrals (and the migration), the compose postgres service
    urls = {services[name]["environment"]["FAULTLOOP_DATABASE_URL"] for name in ("migrate", *CENTRALS)}
    assert len(urls) == 1, urls
    (url,) = urls
    assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
    assert url.endswith("/" + services["postgres"]["environment"]["POSTGRES_DB"])
    # everything else the two instances are told is the same too (one installation)
    assert services["central-1"]["environment"] == services["central-2"]["environment"]
    # each keeps its own data directory; both publish the API, on different host ports
    c1, c2 = (_settings_of(services[name]) for name in CENTRALS)
    hosts = [_published(services[name])[c.port] for name, c in zip(CENTRALS, (c1, c2), strict=True)]
    assert len(set(hosts)) == 2, hosts
    volumes = [services[name]["volumes"][0].split(":")[0] for name in CENTRALS]
    assert len(set(volumes)) == 2 and set(volumes) <= set(_compose()["volumes"]), volumes


def test_compose_collector_has_no_database_and_shares_the_broker_and_key_with_central():
    services = _compose()["services"]
    collector = services["collector"]["environment"]
    assert "FAULTLOOP_DATABASE_URL" not in collector  # no database of its own
    assert "FAULTLOOP_SECRET_KEY" not in collector  # nor central's key: the directory uses the collector key
    settings = _settings_of(services["collector"])
    assert settings.collector_name and settings.collector_group == "default"
    central = services["central-1"]["environment"]
    for name in ("FAULTLOOP_NATS_URL", "FAULTLOOP_NATS_USER", "FAULTLOOP_NATS_PASSWORD", "FAULTLOOP_COLLECTOR_KEY"):
        assert collector[name] == central[name], name
    assert collector["FAULTLOOP_COLLECTOR_KEY"].startswith("${FAULTLOOP_COLLECTOR_KEY:?")
    assert services["collector"]["depends_on"]["nats"]["condition"] == "service_healthy"
    # its spool survives a restart of the container
    (volume,) = services["collector"]["volumes"]
    source, target = volume.split(":")
    assert source in _compose()["volumes"] and target == settings.data_dir.as_posix()


def test_compose_names_only_real_settings():
    """Every FAULTLOOP_* name anywhere in the compose file (variables, ${...} references, secrets)
    is a setting, and every faultloop service's environment makes a valid Settings object."""
    text = (ROOT / "docker-compose.yml").read_text()
    fields = set(Settings.model_fields)
    names = set(re.findall(r"FAULTLOOP_[A-Z0-9_]+", text))
    assert {"FAULTLOOP_NATS_URL", "FAULTLOOP_COLLECTOR_GROUP", "FAULTLOOP_COLLECTOR_NAME"} <= names
    unknown = sorted(n for n in names if n.removeprefix("FAULTLOOP_").lower() not in fields)
    assert not unknown, f"not settings: {unknown}"
    services = _compose()["services"]
    for name in FAULTLOOP_SERVICES:
        assert services[name]["build"] == ".", name
        for key in services[name]["environment"]:
            assert key.startswith("FAULTLOOP_"), (name, key)
        _settings_of(services[name])  # raises, naming the setting, on a value it refuses


def test_compose_ports_agree_with_settings_and_the_image():
    services = _compose()["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name in (*CENTRALS, "collector"):
        settings = _settings_of(services[name])
        assert settings.host == "0.0.0.0", name  # noqa: S104 - inside the container
        assert f"EXPOSE {settings.port}\n" in dockerfile
        if name != "collector":  # the collector's /healthz and /metrics stay inside the network
            assert settings.port in _published(services[name]), name
    collector = _settings_of(services["collector"])
    udp = _published(services["collector"], "udp")
    assert udp == {collector.trap_port: 162, collector.syslog_port: 514}
    assert collector.trap_host == collector.syslog_host == "0.0.0.0"  # noqa: S104
    for port in (collector.trap_port, collector.syslog_port):
        assert f"EXPOSE {port}/udp" in dockerfile
    # the embedded (demo) defaults are the ports compose maps to: no root needed in the container
    assert collector.trap_port == Settings.model_fields["trap_port"].default
    assert collector.syslog_port == Settings.model_fields["syslog_port"].default
    for name in CENTRALS:  # the central role runs no receivers: nothing UDP published there
        assert not _published(services[name], "udp"), name


def test_compose_nats_has_jetstream_on_and_the_faultloop_services_reach_it():
    services = _compose()["services"]
    nats_service = services["nats"]
    assert nats_service["image"].startswith("nats:")
    command = nats_service["command"]
    assert "--jetstream" in command or "-js" in command
    config_path = command[command.index("--config") + 1]
    mounts = _bind_mounts(nats_service)
    config = (ROOT / mounts[config_path]).read_text()
    assert re.search(r"^jetstream \{[^}]*store_dir: /data", config, re.M | re.S)
    named = set(_compose()["volumes"])
    assert "/data" in [v.split(":")[1] for v in nats_service["volumes"] if v.split(":")[0] in named]
    # the password comes from the environment, required, never written in the file or the command
    assert nats_service["environment"]["NATS_PASSWORD"].startswith("${NATS_PASSWORD:?")
    assert "password: $NATS_PASSWORD" in config
    assert not any("pass" in part for part in command)
    port = int(re.search(r"^port: (\d+)", config, re.M).group(1))  # type: ignore[union-attr]
    assert _published(nats_service)[port] == port  # remote collectors connect here
    user = re.search(r"^\s*user: (\S+)", config, re.M).group(1)  # type: ignore[union-attr]
    for name in (*CENTRALS, "collector"):
        settings = _settings_of(services[name])
        assert settings.nats_url == f"nats://nats:{port}", name
        assert settings.nats_user == user, name
        assert services[name]["environment"]["FAULTLOOP_NATS_PASSWORD"] == "${NATS_PASSWORD:?set NATS_PASSWORD in .env}"
    healthcheck = " ".join(nats_service["healthcheck"]["test"])
    http_port = re.search(r"^http_port: (\d+)", config, re.M).group(1)  # type: ignore[union-attr]
    assert f"127.0.0.1:{http_port}/healthz?js-enabled-only=true" in healthcheck


def test_nats_config_passes_nats_server_check():
    """Debian's nats-server checks the shipped file (-t): valid with NATS_PASSWORD set, refused without."""
    server = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    assert server, "nats-server is missing: apt-get install nats-server (scripts/test-deps.sh installs it)"
    path = str(ROOT / "deploy/nats/nats.conf")
    ok = subprocess.run([server, "-c", path, "-t"], capture_output=True, text=True, timeout=60,
                        env={"PATH": "/usr/bin:/bin", "NATS_PASSWORD": "x"})  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    missing = subprocess.run([server, "-c", path, "-t"], capture_output=True, text=True, timeout=60,
                             env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert missing.returncode != 0 and "NATS_PASSWORD" in missing.stdout + missing.stderr


def test_compose_publishes_the_trap_port_the_receiver_listens_on():
    service = _compose()["services"]["collector"]
    settings = _settings_of(service)
    assert settings.trap_host == "0.0.0.0"  # noqa: S104 - inside the container, reachable through the mapping
    assert f"162:{settings.trap_port}/udp" in service["ports"]
    assert f"514:{settings.syslog_port}/udp" in service["ports"]


def test_compose_receivers_refuse_unknown_sources_and_need_a_community_list():
    """The published trap port is reachable by anyone: compose must not run it with 'any community'
    and must not attribute (or accept) traps from addresses the inventory does not know."""
    services = _compose()["services"]
    env = services["collector"]["environment"]
    assert env["FAULTLOOP_RECEIVER_UNKNOWN_SOURCES"] == "drop"
    # required from .env: compose refuses to start without it (the ${VAR:?message} form)
    assert re.fullmatch(r"\$\{FAULTLOOP_TRAP_COMMUNITIES:\?[^}]+\}", env["FAULTLOOP_TRAP_COMMUNITIES"])
    settings = _settings_of(services["collector"])
    assert settings.receiver_unknown_sources == "drop"
    assert settings.trap_communities  # a list, not "any"
    # the embedded default keeps the demo lab working: its devices are in the inventory anyway
    assert Settings.model_fields["receiver_unknown_sources"].default == "accept"
    # whichever service publishes a UDP port runs the receivers, and only the collector does
    assert [name for name, s in services.items() if _published(s, "udp")] == ["collector"]


def test_dockerfile_exposes_the_configured_port_and_copies_every_package():
    text = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {Settings.model_fields['port'].default}" in text
    import tomllib

    # every package the wheel takes (a new floor included), but the lab
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.removesuffix("*") for pattern in include}
    assert "northbound" in packages
    for package in packages - {"lab"}:
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


def test_prometheus_scrapes_both_centrals_and_the_collector_on_their_port():
    config = _prometheus_config()
    assert config["global"]["scrape_interval"] == "15s"
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "faultloop"]
    assert job["metrics_path"] == "/metrics"
    compose = _compose()
    services = compose["services"]
    targets = {}
    for static in job["static_configs"]:
        for target in static["targets"]:
            targets[target] = static.get("labels", {})
    expected = {f"{name}:{_settings_of(services[name]).port}" for name in (*CENTRALS, "collector")}
    assert set(targets) == expected
    for name in CENTRALS:
        assert targets[f"{name}:{_settings_of(services[name]).port}"] == {"role": "central"}
    collector = _settings_of(services["collector"])
    assert targets[f"collector:{collector.port}"] == {"role": "collector", "collector": collector.collector_name}
    assert all("instance" not in labels for labels in targets.values())  # one instance label per target
    assert set(services["prometheus"]["depends_on"]) == {*CENTRALS, "collector"}


def test_prometheus_sends_the_metrics_token_faultloop_expects():
    """FAULTLOOP_METRICS_TOKEN from .env: faultloop requires it, and compose hands the same
    variable to Prometheus as a secret file, the file prometheus.yml reads the bearer token from."""
    compose = _compose()
    for name in (*CENTRALS, "collector"):
        env = compose["services"][name]["environment"]
        assert env["FAULTLOOP_METRICS_TOKEN"].startswith("${FAULTLOOP_METRICS_TOKEN:?"), name
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
