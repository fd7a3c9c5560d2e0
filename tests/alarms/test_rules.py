"""Rule and scenario files: errors name file, rule and field; a bad reload changes nothing."""

from pathlib import Path

import pytest

from alarms.bus import AlarmBus
from alarms.errors import RuleError
from alarms.replay import parse_scenario, run_file
from alarms.rules import build_ruleset, load_ruleset
from alarms.runner import AlarmEngine
from faultloop.events import Event


def _load(text, file="site.yaml"):
    return build_ruleset([(file, text)])


@pytest.mark.parametrize(
    "text,rule,field,message",
    [
        ("mappings:\n  - {name: x, raise: [a], alarm_type: t, severity: huge}\n", "x", "severity", "Input should be"),
        ("mappings:\n  - {name: x, raise: [], alarm_type: t}\n", "x", "raise", "at least 1 item"),
        (
            "mappings:\n  - {name: x, raise: [a], alarm_type: t, reduction_key: '{host}'}\n",
            "x",
            "reduction_key",
            "unknown placeholder {host}",
        ),
        ("mappings:\n  - {name: x, raise: [a], alarm_type: t, colour: red}\n", "x", "colour", "Extra inputs"),
        (
            "mappings:\n  - {name: x, raise: [a], alarm_type: t, escalate: [{severity: major}]}\n",
            "x",
            "escalate.0",
            "exactly one of count or after_s",
        ),
        ("thresholds:\n  - {name: cpu, metric: c, op: '=>', value: 1}\n", "cpu", "op", "Input should be"),
        (
            "thresholds:\n  - {name: cpu, metric: c, op: '>', value: 90, clear_value: 95}\n",
            "cpu",
            "(rule)",
            "clear_value 95.0 must not be above value 90.0",
        ),
        ("thresholds:\n  - {metric: c, op: '>', value: 90}\n", "thresholds[0]", "name", "Field required"),
        (
            "mappings:\n  - {name: x, raise: [linkDown], alarm_type: t}\n",
            "x",
            "raise",
            "already mapped by rule link-down",
        ),
        ("mappings:\n  - {name: link-down, raise: [foo], alarm_type: t}\n", "link-down", "name", "duplicate rule name"),
    ],
)
def test_rule_errors_name_file_rule_and_field(text, rule, field, message):
    with pytest.raises(RuleError) as exc:
        build_ruleset(
            [
                (
                    "alarms/data/default_rules.yaml",
                    (Path(__file__).parents[2] / "alarms/data/default_rules.yaml").read_text(),
                ),
                ("site.yaml", text),
            ]
        )
    err = exc.value
    assert (err.file, err.rule, err.rule_field) == ("site.yaml", rule, field)
    assert message in str(err)
    assert str(err).startswith(f"site.yaml: rule {rule!r}: field {field!r}:")


def test_yaml_syntax_and_shape_errors_name_the_file():
    with pytest.raises(RuleError, match=r"^bad.yaml: field '\(yaml\)': not valid YAML at line 3"):
        _load("mappings:\n  - [unclosed\n", file="bad.yaml")
    with pytest.raises(RuleError, match="expected a mapping"):
        _load("- just a list\n", file="bad.yaml")


def test_a_bad_reload_leaves_the_running_rules_untouched(runtime, tmp_path, frozen):
    engine = AlarmEngine(runtime, AlarmBus())
    good = tmp_path / "good.yaml"
    good.write_text(
        "mappings:\n  - {name: psu, raise: [psu_failed], clear: [psu_ok], alarm_type: psu, severity: major}\n"
    )
    engine.reload_rules(good)
    assert "psu" in engine.core.rules.by_alarm_type
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "mappings:\n"
        "  - {name: fan, raise: [fan_failed], alarm_type: fan, severity: major}\n"
        "  - {name: temp, raise: [temp_high], alarm_type: temp, severity: scorching}\n"
    )
    before = engine.core.rules
    with pytest.raises(RuleError, match=r"bad.yaml: rule 'temp': field 'severity'"):
        engine.reload_rules(bad)
    assert engine.core.rules is before
    assert "fan" not in engine.core.rules.by_alarm_type  # not half-applied


def test_default_rules_decisions():
    rules = load_ruleset()
    from datetime import UTC, datetime

    t = datetime(2026, 1, 1, tzinfo=UTC)
    down = rules.decide(Event("trap", "r1", "linkDown", "minor", t, managed_object="interface:Gi0/1"))
    up = rules.decide(Event("trap", "r1", "linkUp", "cleared", t, managed_object="interface:Gi0/1"))
    assert (down.action, down.reduction_key, down.severity) == ("raise", "link_down:r1:interface:Gi0/1", "major")
    assert (up.action, up.reduction_key) == ("clear", down.reduction_key)
    other = rules.decide(Event("syslog", "r1", "ospf_nbr_down", "warning", t, managed_object="nbr:10.0.0.2"))
    assert (other.action, other.reduction_key, other.severity) == ("raise", "ospf_nbr_down:r1:nbr:10.0.0.2", "warning")
    gone = rules.decide(Event("syslog", "r1", "ospf_nbr_down", "cleared", t, managed_object="nbr:10.0.0.2"))
    assert (gone.action, gone.reduction_key) == ("clear", other.reduction_key)


SCENARIO = """
name: s
topology:
  devices:
    - {hostname: a}
events:
  - {at: 1, device: a, type: linkDown}
  - {at: 2, device: a, type: linkDown, severity: sometimes}
expect:
  - {at: 3, active: 1}
"""


def test_invalid_scenario_names_file_item_and_field(tmp_path):
    with pytest.raises(RuleError) as exc:
        parse_scenario(SCENARIO, file="s.yaml")
    assert str(exc.value).startswith("s.yaml: rule 'events[1]': field 'severity':")
    with pytest.raises(RuleError, match="s.yaml: rule 'events\\[0\\]': field 'for'"):
        parse_scenario(SCENARIO.replace("- {at: 1,", "- {for: {i: 'x'}, at: 1,"), file="s.yaml")
    with pytest.raises(RuleError, match="field 'expect'"):
        parse_scenario("name: s\n", file="s.yaml")
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RuleError, match="nope.yaml: field '\\(file\\)': cannot read"):
        run_file(missing)


def test_a_failing_expectation_is_reported_with_time_and_field(tmp_path):
    path = tmp_path / "wrong.yaml"
    path.write_text(SCENARIO.replace("severity: sometimes", "severity: major").replace("active: 1", "active: 2"))
    result = run_file(path)
    assert not result.ok
    assert result.failures[0].startswith("t=3s: expected 2 active alarms, got 1")


def test_rules_file_is_hot_reloaded_and_an_invalid_edit_keeps_the_running_rules(runtime, tmp_path, frozen):
    import os

    from faultloop.metrics import REGISTRY

    path = tmp_path / "site.yaml"
    path.write_text("mappings:\n  - {name: psu, raise: [psu_failed], alarm_type: psu}\n")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    runtime.settings.alarm_rules_file = path
    engine = AlarmEngine(runtime, AlarmBus())
    engine.run_once()
    assert "psu" in engine.core.rules.by_alarm_type
    running = engine.core.rules
    invalid_before = REGISTRY.get_sample_value("faultloop_alarm_rule_reloads_total", {"result": "invalid"}) or 0
    path.write_text("mappings:\n  - {name: psu, raise: [psu_failed], alarm_type: psu, severity: dire}\n")
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    engine.run_once()
    assert engine.core.rules is running
    assert REGISTRY.get_sample_value("faultloop_alarm_rule_reloads_total", {"result": "invalid"}) == invalid_before + 1
    path.write_text("mappings:\n  - {name: fan, raise: [fan_failed], alarm_type: fan}\n")
    os.utime(path, ns=(3_000_000_000, 3_000_000_000))
    engine.run_once()
    assert "fan" in engine.core.rules.by_alarm_type and "psu" not in engine.core.rules.by_alarm_type
