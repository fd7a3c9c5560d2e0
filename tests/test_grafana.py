"""The Grafana dashboards (deploy/grafana/dashboards) against what faultloop really exposes.

Every PromQL expression of every panel and template variable names only series that a running
faultloop process (the whole pipeline, as ``faultloop serve`` wires it) shows on ``GET /metrics``;
the metric names come from the exposition's HELP/TYPE lines with the suffixes of each type
(``_total`` counters, ``_bucket``/``_sum``/``_count`` histograms). The checker is tested too: a
misspelled metric, a gauge read as a histogram or a counter without ``_total`` make it fail.
Every expression is also parsed by Prometheus' own ``promtool``.
"""

from __future__ import annotations

import copy
import json
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from faultloop import migrate
from faultloop.cmd.app import build_pipeline, create_app
from faultloop.runtime import build_runtime
from faultloop.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
METRICS_TOKEN = "scrape-token-for-the-dashboard-test"

# ---------------------------------------------------------------------------- the checker

FUNCTIONS = frozenset(
    """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
    clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month
    deg delta deriv end exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
    histogram_stddev histogram_stdvar histogram_sum holt_winters double_exponential_smoothing hour idelta
    increase info irate label_join label_replace last_over_time ln log10 log2 mad_over_time
    max_over_time min_over_time minute month pi predict_linear present_over_time quantile_over_time rad
    rate resets round scalar sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt start
    stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year""".split()
)
AGGREGATIONS = frozenset(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio".split()
)
GROUPING = frozenset({"by", "without", "on", "ignoring"})  # always followed by a (label list)
GROUP_SIDES = frozenset({"group_left", "group_right"})  # optionally followed by a (label list)
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2"})
NUMBER_WORDS = frozenset({"inf", "nan"})
# Series Prometheus itself adds to every scrape of a target; not on /metrics.
SCRAPE_SERIES = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling"}
)
GRAFANA_BUILTINS = frozenset({"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s"})

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(
    r"(?:0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?"
)
_GRAFANA_VAR = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
_NAME_MATCHER = re.compile(r"__name__\s*(=~|!~|!=|=)\s*")
_OPERATORS = set("+-*/%^=!<>,@")


def grafana_variables(expr: str) -> set[str]:
    return {a or b for a, b in _GRAFANA_VAR.findall(expr)}


def _string_end(expr: str, i: int) -> int:
    """Index just past the string literal that starts at ``i``."""
    quote, j = expr[i], i + 1
    while j < len(expr):
        if expr[j] == "\\" and quote != "`":
            j += 2
            continue
        if expr[j] == quote:
            return j + 1
        j += 1
    raise ValueError(f"unterminated string at {i} in {expr!r}")


def _skip_space(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def _label_block(expr: str, i: int, names: set[str]) -> int:
    """Skip a ``{...}`` matcher block (strings respected); ``__name__="x"`` names the metric x."""
    j = i + 1
    while j < len(expr):
        c = expr[j]
        if c in "\"'`":
            j = _string_end(expr, j)
            continue
        if c == "}":
            return j + 1
        m = _NAME_MATCHER.match(expr, j)
        if m:
            k = _skip_space(expr, m.end())
            if m.group(1) != "=" or k >= len(expr) or expr[k] not in "\"'`":
                raise ValueError(f'a __name__ matcher other than = "name" cannot be checked: {expr!r}')
            end = _string_end(expr, k)
            names.add(expr[k + 1 : end - 1])
            j = end
            continue
        j += 1
    raise ValueError(f"unclosed {{ at {i} in {expr!r}")


def _paren_group(expr: str, i: int) -> int:
    """Skip a ``(label, list)`` after by/without/on/ignoring/group_left/group_right."""
    if i >= len(expr) or expr[i] != "(":
        raise ValueError(f"expected a (label list) at {i} in {expr!r}")
    end = expr.find(")", i)
    if end < 0:
        raise ValueError(f"unclosed ( at {i} in {expr!r}")
    inner = expr[i + 1 : end]
    if not all(_IDENT.fullmatch(label.strip()) for label in inner.split(",") if label.strip()):
        raise ValueError(f"not a label list: ({inner}) in {expr!r}")
    return end + 1


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads, skipping functions, aggregations and their
    grouping labels, label matchers, range/subquery brackets, keywords, numbers, durations,
    strings and Grafana variables. Raises ValueError for what it cannot read (an unknown
    function, unbalanced brackets, an unterminated string): a typo there is an error too."""
    text = _GRAFANA_VAR.sub("1", expr)  # $__rate_interval, $site, ${site}: never metric names
    names: set[str] = set()
    depth = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":  # comment to the end of the line
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl + 1
        elif c in "\"'`":
            i = _string_end(text, i)
        elif c == "{":
            i = _label_block(text, i, names)
        elif c == "[":  # range or subquery: [5m], [1h:1m], [$__rate_interval]
            end = text.find("]", i)
            if end < 0:
                raise ValueError(f"unclosed [ at {i} in {expr!r}")
            i = end + 1
        elif c == "(":
            depth += 1
            i += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ) at {i} in {expr!r}")
            i += 1
        elif c.isdigit() or (c == "." and text[i + 1 : i + 2].isdigit()):
            m = _NUMBER.match(text, i)
            assert m is not None
            i = m.end()
            if i < len(text) and (text[i].isalnum() or text[i] in "_:"):
                raise ValueError(f"bad number or duration at {m.start()} in {expr!r}")
        elif _IDENT.match(text, i):
            m = _IDENT.match(text, i)
            assert m is not None
            word, i = m.group(), m.end()
            lower = word.lower()
            nxt = _skip_space(text, i)
            if lower in GROUPING:
                i = _paren_group(text, nxt)
            elif lower in GROUP_SIDES:
                if nxt < len(text) and text[nxt] == "(":
                    i = _paren_group(text, nxt)
            elif lower in KEYWORDS or lower in NUMBER_WORDS or lower in AGGREGATIONS:
                pass  # an aggregation may be followed by by/without before its (
            elif nxt < len(text) and text[nxt] == "(":
                if word not in FUNCTIONS:
                    raise ValueError(f"unknown function {word}() in {expr!r}")
            else:
                names.add(word)
        elif c in _OPERATORS:
            i += 1
        else:
            raise ValueError(f"unexpected {c!r} at {i} in {expr!r}")
    if depth != 0:
        raise ValueError(f"unbalanced ( in {expr!r}")
    return names


def template_query_metrics(query: str) -> set[str]:
    """Metric names of a Grafana Prometheus variable query (label_values, query_result)."""
    query = query.strip()
    if m := re.fullmatch(r"label_values\((.*),\s*(\w+)\s*\)", query, re.S):
        return promql_metric_names(m.group(1))
    if re.fullmatch(r"label_values\(\s*\w+\s*\)", query):
        return set()
    if m := re.fullmatch(r"query_result\((.*)\)", query, re.S):
        return promql_metric_names(m.group(1))
    raise ValueError(f"unsupported variable query {query!r}")


def exposed_series(exposition: str) -> set[str]:
    """Series names a Prometheus scrape of this exposition can hold, from its HELP/TYPE lines."""
    types: dict[str, str] = {}
    helps: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind.strip()
        elif line.startswith("# HELP "):
            helps.add(line.split(maxsplit=3)[2])
    assert helps == set(types), f"HELP and TYPE lines disagree: {sorted(helps ^ set(types))}"
    series: set[str] = set()
    for name, kind in types.items():
        if kind == "counter":
            series.add(name if name.endswith("_total") else f"{name}_total")
        elif kind == "histogram":
            series |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "summary":
            series |= {name, f"{name}_sum", f"{name}_count"}
        elif kind in ("gauge", "untyped", "unknown"):
            series.add(name)
        else:
            raise AssertionError(f"metric type {kind} of {name} is not handled")
    return series


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target (rows' nested panels included)."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel.get('title')!r} target {target.get('refId')}", target["expr"]


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def check_dashboard(dashboard: dict[str, Any], exposed: set[str]) -> list[str]:
    """Every problem with the metrics a dashboard reads; empty when it reads only exposed series."""
    known = exposed | SCRAPE_SERIES
    problems: list[str] = []
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    checks = list(dashboard_exprs(dashboard))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            try:
                names = template_query_metrics(query)
            except ValueError as exc:
                problems.append(f"variable {var['name']}: {exc}")
                continue
            problems += [f"variable {var['name']}: {n} is not exposed" for n in sorted(names - known)]
    for where, expr in checks:
        try:
            names = promql_metric_names(expr)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not names:
            problems.append(f"{where}: reads no metric: {expr!r}")
        problems += [f"{where}: {n} is not exposed" for n in sorted(names - known)]
        unknown_vars = grafana_variables(expr) - variables - GRAFANA_BUILTINS
        problems += [f"{where}: ${v} is not a variable of the dashboard" for v in sorted(unknown_vars)]
    return problems


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    """GET /metrics of a real app whose whole pipeline (poller, receivers, alarm engine,
    ticketing, SSH collectors, provisioning) runs, as ``faultloop serve`` wires it."""
    d = tmp_path_factory.mktemp("grafana")
    settings = Settings(
        data_dir=d / "var",
        database_url=f"sqlite:///{d / 'faultloop.db'}",
        secret_key=Fernet.generate_key().decode(),
        metrics_token=METRICS_TOKEN,
        trap_port=0,
        syslog_port=0,
    )
    rt = build_runtime(settings)
    migrate.upgrade(rt.engine)
    try:
        with TestClient(create_app(rt, build_pipeline(rt))) as client:
            assert client.get("/metrics").status_code == 401
            r = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert r.status_code == 200, r.text
            return r.text
    finally:
        rt.engine.dispose()


@pytest.fixture(scope="module")
def exposed(exposition: str) -> set[str]:
    return exposed_series(exposition)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def datasource_uid() -> str:
    doc = yaml.safe_load(DATASOURCES.read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "prometheus"
    return str(ds["uid"])


# ---------------------------------------------------------------------------- the checker's own tests


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("faultloop_device_up", {"faultloop_device_up"}),
        (
            'histogram_quantile(0.9, sum by (le, priority) (rate(faultloop_x_bucket{job="a",le!="+Inf"}[5m:1m] '
            "offset 1h)))",
            {"faultloop_x_bucket"},
        ),
        (
            'sum without (instance) (rate(a_total{site=~"$site"}[$__rate_interval])) * 60 or vector(0)',
            {"a_total"},
        ),
        ("topk(10, 100 * (a > b or b) / ignoring(dir) group_left c) unless on(device) d > bool 5e3", set("abcd")),
        ("a / on(x) group_right(y, z) b and c @ end() atan2 d offset -5m", set("abcd")),
        ('SUM BY (x) (y) AND count_values("version", z)', {"y", "z"}),
        ('label_replace(up, "dst", "$1", "src", "(.*)")', {"up"}),
        ('{__name__="faultloop_build_info", version=~".+"} == Inf', {"faultloop_build_info"}),
        ("sum(rate(x:recorded_total[1h])) # a comment naming not_a_metric\n/ 0x10", {"x:recorded_total"}),
        ("-.5 + 1e-3 + NaN + scalar(m)", {"m"}),
    ],
)
def test_tokenizer_finds_exactly_the_metric_names(expr, names):
    assert promql_metric_names(expr) == names


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ("rate(faultloop_x_total[5m]", "unbalanced"),
        ("rate(faultloop_x_total[5m]))", "unbalanced"),
        ("rat(faultloop_x_total[5m])", "unknown function rat"),
        ('faultloop_x{a="b}', "unterminated string"),
        ("faultloop_x{a='b'", "unclosed {"),
        ("faultloop_x[5m", "unclosed ["),
        ("sum by faultloop_x", "label list"),
        ('{__name__=~"faultloop_.*"}', "cannot be checked"),
        ("faultloop_x; drop", "unexpected ';'"),
        ("5mm + x", "bad number"),
    ],
)
def test_tokenizer_refuses_what_it_cannot_read(expr, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        promql_metric_names(expr)


def test_exposed_series_accepts_only_the_suffixes_of_each_type():
    text = "\n".join(
        [
            "# HELP c_total a counter",
            "# TYPE c_total counter",
            "# HELP legacy an OpenMetrics-style counter family",
            "# TYPE legacy counter",
            "# HELP h a histogram",
            "# TYPE h histogram",
            "# HELP g a gauge",
            "# TYPE g gauge",
            "# HELP s a summary",
            "# TYPE s summary",
        ]
    )
    series = exposed_series(text)
    assert series == {"c_total", "legacy_total", "h_bucket", "h_sum", "h_count", "g", "s", "s_sum", "s_count"}
    for wrong in ("c", "c_total_total", "h", "g_bucket", "g_total", "legacy", "s_bucket"):
        assert wrong not in series


def test_a_broken_expression_makes_the_check_fail(exposed):
    dashboard = load(ROOT / "deploy/grafana/dashboards/network-overview.json")
    assert check_dashboard(dashboard, exposed) == []
    panel = next(p for p in all_panels(dashboard) if p.get("targets"))
    for broken, complaint in [
        ("count(faultloop_device_upp == 0)", "faultloop_device_upp is not exposed"),
        # a gauge read as if it were a histogram
        ("histogram_quantile(0.9, rate(faultloop_poll_duration_seconds_bucket[5m]))", "_bucket is not exposed"),
        # a counter without its _total suffix
        ("rate(faultloop_traps_received[5m])", "faultloop_traps_received is not exposed"),
        ("rate(faultloop_traps_received_total[5m]", "unbalanced"),
        ("rates(faultloop_traps_received_total[5m])", "unknown function rates"),
        ('faultloop_device_up{site=~"$region"}', "$region is not a variable"),
        ("vector(1)", "reads no metric"),
    ]:
        bad = copy.deepcopy(dashboard)
        bad_panel = next(p for p in all_panels(bad) if p["id"] == panel["id"])
        bad_panel["targets"][0]["expr"] = broken
        problems = check_dashboard(bad, exposed)
        assert len(problems) == 1 and complaint in problems[0], (broken, problems)
        assert f"panel {panel['id']}" in problems[0]
    bad = copy.deepcopy(dashboard)
    bad["templating"]["list"][0]["query"]["query"] = "label_values(faultloop_devices_up, site)"
    assert check_dashboard(bad, exposed) == ["variable site: faultloop_devices_up is not exposed"]


# ---------------------------------------------------------------------------- the dashboards


def test_the_exposition_has_the_series_the_dashboards_are_built_on(exposed):
    """The running pipeline registers its collectors: the poller's, the receivers', the alarm
    engine's, ticketing's, provisioning's (not only the module-level counters)."""
    for name in (
        "faultloop_device_up",
        "faultloop_interface_speed_bits_per_second",
        "faultloop_interface_in_discards_total",
        "faultloop_snmp_poll_duration_seconds_bucket",
        "faultloop_snmp_dropped_datagrams_total",  # only while a poller runs
        "faultloop_alarms_active",
        "faultloop_tickets_open",
        "faultloop_ticket_time_to_restore_seconds_bucket",
        "faultloop_provisioning_orders_total",
        "faultloop_traps_dropped_total",
        "faultloop_syslog_received_total",
    ):
        assert name in exposed, name


def test_three_dashboards_exist():
    assert {p.name for p in DASHBOARDS} == {"network-overview.json", "noc-operations.json", "collector-health.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_well_formed_and_uses_the_provisioned_datasource(path):
    dashboard = load(path)
    uid = datasource_uid()
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"]), dashboard.get("uid")
    assert dashboard["title"] and "faultloop" in dashboard["tags"]
    assert dashboard["schemaVersion"] >= 39  # Grafana 10.4 / 11
    assert "id" not in dashboard or dashboard["id"] is None  # provisioning assigns database ids
    panels = list(all_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), f"duplicate panel titles in {path.name}"
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"]) == {"type": "prometheus", "uid": uid}
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == {"type": "prometheus", "uid": uid}, var["name"]
    # panels do not overlap
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine


def test_dashboard_uids_and_titles_are_unique():
    dashboards = [load(p) for p in DASHBOARDS]
    assert len({d["uid"] for d in dashboards}) == len(dashboards)
    assert len({d["title"] for d in dashboards}) == len(dashboards)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_expression_reads_only_exposed_metrics(path, exposed):
    assert check_dashboard(load(path), exposed) == []


@pytest.mark.parametrize(
    ("name", "needed"),
    [
        (
            "network-overview.json",
            {
                "faultloop_device_up",
                "faultloop_interface_in_bits_per_second",
                "faultloop_interface_out_bits_per_second",
                "faultloop_interface_speed_bits_per_second",
                "faultloop_interface_in_errors_total",
                "faultloop_interface_out_errors_total",
                "faultloop_interface_in_discards_total",
                "faultloop_interface_out_discards_total",
            },
        ),
        (
            "noc-operations.json",
            {
                "faultloop_alarms_active",
                "faultloop_tickets_open",
                "faultloop_ticket_sla_breaches_total",
                "faultloop_ticket_time_to_acknowledge_seconds_bucket",
                "faultloop_ticket_time_to_restore_seconds_bucket",
                "faultloop_provisioning_orders_total",
            },
        ),
        (
            "collector-health.json",
            {
                "faultloop_snmp_poll_duration_seconds_bucket",
                "faultloop_snmp_poll_duration_seconds_count",
                "faultloop_traps_received_total",
                "faultloop_traps_dropped_total",
                "faultloop_syslog_received_total",
                "faultloop_syslog_dropped_total",
                "faultloop_alarm_events_processed_total",
                "faultloop_alarm_queue_depth",
            },
        ),
    ],
)
def test_each_dashboard_covers_its_subject(name, needed):
    exprs = dashboard_exprs(load(ROOT / "deploy/grafana/dashboards" / name))
    used = set().union(*(promql_metric_names(expr) for _where, expr in exprs))
    assert needed <= used, sorted(needed - used)


def test_quantiles_come_from_histogram_buckets_by_le():
    """histogram_quantile over a rate of _bucket series, aggregated keeping le."""
    for path in DASHBOARDS:
        for where, expr in dashboard_exprs(load(path)):
            if "histogram_quantile" not in expr:
                continue
            assert re.search(r"sum by \((?:[\w, ]*\b)?le\b[\w, ]*\) \(rate\(\w+_bucket", expr), f"{path.name} {where}"


def test_every_expression_parses_with_promtool(tmp_path):
    """Prometheus' own parser (Debian's prometheus package ships promtool) reads every expression."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (scripts/test-deps.sh installs it)"
    rules = []
    for path in DASHBOARDS:
        dashboard = load(path)
        for n, (_where, expr) in enumerate(dashboard_exprs(dashboard)):
            # Grafana fills these in before the query reaches Prometheus
            concrete = expr.replace("$__rate_interval", "1m").replace("$__range", "6h").replace("$site", ".*")
            rules.append({"record": f"check:{dashboard['uid'].replace('-', '_')}:{n}", "expr": concrete})
    assert len(rules) > 50
    file = tmp_path / "dashboards.rules.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# ---------------------------------------------------------------------------- a real Prometheus


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Uvicorn:
    def __init__(self, app: Any, host: str) -> None:
        self.host = host
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning", workers=1))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:  # start-up readiness: nothing below depends on timing
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return f"{self.host}:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _exprs_by_title(path: Path) -> dict[str, list[str]]:
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in all_panels(load(path)) if p.get("targets")}


def _grafana_to_prometheus(expr: str) -> str:
    """What Grafana sends: its variables filled in (1 s scrapes here, so a 10 s rate window)."""
    filled = expr.replace("$__rate_interval", "10s").replace("$__range", "1h")
    return filled.replace("$site", ".*").replace("$collector", ".*")


def test_a_real_prometheus_scrapes_faultloop_and_evaluates_every_panel(tmp_path):
    """faultloop (whole pipeline, polling the lab network over SNMP) behind uvicorn with a metrics
    token; Debian's Prometheus scrapes it with this repository's scrape config (the token from a
    file) and evaluates every dashboard expression: none may fail, and the headline panels show
    the lab as it is (3 devices up, utilisation from ifHighSpeed, polls per minute)."""
    from faultloop.db import transaction
    from inventory import service as inventory
    from inventory.schemas import InventoryDoc
    from lab.inventory_out import inventory_dict
    from lab.network import LabNetwork
    from tests.lab.conftest import small_topology
    from tests.support import BackgroundLoop

    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: apt-get install prometheus (scripts/test-deps.sh installs it)"
    loop = BackgroundLoop()
    lab = LabNetwork(small_topology(port=random.randint(20000, 60000)), ssh=False, fresh_boot=True)
    loop.run(lab.start())
    settings = Settings(
        data_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'faultloop.db'}",
        secret_key=Fernet.generate_key().decode(),
        metrics_token=METRICS_TOKEN,
        trap_port=0,
        syslog_port=0,
        poll_interval_s=1,
        poll_timeout_s=0.5,
        poll_retries=0,
    )
    rt = build_runtime(settings)
    migrate.upgrade(rt.engine)
    with transaction(rt.sessions) as session:
        doc = InventoryDoc.model_validate(inventory_dict(lab.topology))
        inventory.import_inventory(session, rt.vault, doc, actor="test", forget_host_key=lambda _device_id: None)
    host = f"127.{random.randint(60, 90)}.{random.randint(0, 250)}.{random.randint(1, 250)}"
    proc = None
    try:
        with _Uvicorn(create_app(rt, build_pipeline(rt)), host) as target:
            # this repository's scrape config, pointed at the test server and a token file
            config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
            config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
            job = config["scrape_configs"][0]
            token = tmp_path / "token"
            token.write_text(METRICS_TOKEN + "\n")
            job["authorization"]["credentials_file"] = str(token)
            # the test server stands in for the first target block (the centrals); the collector
            # blocks of the compose layout name hosts that do not exist here
            job["static_configs"] = [{**job["static_configs"][0], "targets": [target]}]
            job.pop("file_sd_configs", None)
            (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
            listen = f"{host}:{_free_port(host)}"
            log = (tmp_path / "prometheus.log").open("w")
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address={listen}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            api = httpx.Client(base_url=f"http://{listen}/api/v1", timeout=10)

            def query(expr: str) -> list[dict[str, Any]]:
                r = api.post("/query", data={"query": expr})
                body = r.json()
                assert r.status_code == 200 and body["status"] == "success", (expr, body)
                return list(body["data"]["result"])

            def value(expr: str) -> float | None:
                result = query(expr)
                return float(result[0]["value"][1]) if result else None

            # wait for what the panels need: the target up and two polls of every device scraped
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
                try:
                    ready = (
                        value("count(faultloop_interface_in_bits_per_second)") == 6
                        and (value("sum(rate(faultloop_snmp_poll_duration_seconds_count[10s]))") or 0) > 0
                    )
                except httpx.TransportError:
                    ready = False
                if ready:
                    break
                assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-3000:]
                time.sleep(0.5)

            assert value('up{job="faultloop"}') == 1.0  # the bearer token from the file was accepted
            evaluated = 0
            for path in DASHBOARDS:
                for where, expr in dashboard_exprs(load(path)):
                    query(_grafana_to_prometheus(expr))  # asserts Prometheus evaluated it without error
                    evaluated += 1
            assert evaluated > 50

            by_title = _exprs_by_title(ROOT / "deploy/grafana/dashboards/network-overview.json")
            assert value(_grafana_to_prometheus(by_title["Devices up"][0])) == 3
            assert value(_grafana_to_prometheus(by_title["Devices down"][0])) == 0
            top_in = query(_grafana_to_prometheus(by_title["Top 10 interfaces by inbound utilisation"][0]))
            busiest = max(top_in, key=lambda s: float(s["value"][1]))
            assert (busiest["metric"]["device"], busiest["metric"]["interface"]) == ("core1", "GigabitEthernet0/1")
            assert float(busiest["value"][1]) == pytest.approx(8.0, rel=0.05)  # 800 Mb/s on 10 Gb/s
            health = _exprs_by_title(ROOT / "deploy/grafana/dashboards/collector-health.json")
            assert (value(_grafana_to_prometheus(health["Polls per minute"][0])) or 0) > 0
            p90 = value(_grafana_to_prometheus(health["Poll p90"][0]))
            assert p90 is not None and 0 < p90 <= 1
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        loop.run(lab.stop())
        loop.close()
        rt.engine.dispose()
