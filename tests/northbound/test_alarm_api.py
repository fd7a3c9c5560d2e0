"""TMF642 Alarm Management v4 over HTTP: list (fields, paging, filters), get, the task resources,
bad input in the TMF Error shape, RBAC; every TMF body checked against the vendored v4 schemas."""

from __future__ import annotations

from sqlalchemy import select

from alarms.models import Alarm, AlarmJournal
from faultloop.audit.models import AuditEntry
from northbound import alarm as tmf_alarm
from northbound.query import matches, parse_list_query
from tests.northbound.conformance import validate, validate_all
from tests.northbound.conftest import later, make_alarm

BASE = "/tmf-api/alarmManagement/v4"


def _error(r, status: int, *needles: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    validate(body, "Error")
    for needle in needles:
        assert needle in body["message"], (needle, body["message"])
    return body


def _network(session):
    """A small alarm picture: a root cause with a correlated child, a cleared alarm, an acknowledged
    one, one in maintenance, one affecting two customer services."""
    root = make_alarm(session, device="r1", managed_object="", alarm_type="device_down", severity="critical",
                      root_cause=True, probable_cause="", at=later(0))  # fmt: skip
    child = make_alarm(session, device="r2", managed_object="interface:Gi0/2", at=later(1), muted=True,
                       suppression_reason="correlated under root cause")  # fmt: skip
    child.parent_id = root.id
    cleared = make_alarm(session, device="r3", alarm_type="cpu_high", severity="minor", state="cleared",
                         at=later(2), last=later(3), cleared_at=later(4), source="poll")  # fmt: skip
    acked = make_alarm(session, device="r4", alarm_type="psu_failed", severity="warning", original_severity="minor",
                       count=3, acknowledged=True, ack_by="alice", ack_at=later(6), at=later(5))  # fmt: skip
    maint = make_alarm(session, device="r5", alarm_type="config_changed", severity="warning", muted=True,
                       suppression_reason="maintenance window 'upgrade' (id 1)", at=later(7))  # fmt: skip
    hurt = make_alarm(session, device="r6", alarm_type="bgp_peer_down", services=[11, 12], at=later(8),
                      specific_problem="peer 10.0.0.2 idle")  # fmt: skip
    session.commit()
    return {"root": root, "child": child, "cleared": cleared, "acked": acked, "maint": maint, "hurt": hurt}


def _ids(body) -> list[str]:
    return [d["id"] for d in body]


def test_list_maps_every_field_and_validates(client, auth, session, frozen):
    a = _network(session)
    r = client.get(f"{BASE}/alarm", headers=auth("oss"))
    assert r.status_code == 200, r.text
    body = r.json()
    validate_all(body, "Alarm")
    assert r.headers["X-Total-Count"] == "6" and r.headers["X-Result-Count"] == "6"
    by_id = {d["id"]: d for d in body}
    # newest change first
    assert _ids(body)[0] == str(a["hurt"].id)
    root = by_id[str(a["root"].id)]
    assert root["href"] == f"{BASE}/alarm/{a['root'].id}"
    assert root["isRootCause"] is True and root["perceivedSeverity"] == "critical" and root["state"] == "raised"
    assert root["alarmType"] == "communicationsAlarm" and root["probableCause"] == "device_down"
    assert root["alarmedObject"] == {"id": "r1", "@referredType": "Resource"} and root["alarmedObjectType"] == "device"
    assert [c["id"] for c in root["correlatedAlarm"]] == [str(a["child"].id)]
    child = by_id[str(a["child"].id)]
    assert child["parentAlarm"] == [tmf_alarm.ref(a["root"].id)] and child["isRootCause"] is False
    assert child["plannedOutageIndicator"] == "InService" and child["alarmedObjectType"] == "interface"
    assert child["probableCause"] == "lossOfSignal" and child["sourceSystemId"] == "faultloop/trap"
    cleared = by_id[str(a["cleared"].id)]
    assert cleared["state"] == "cleared" and cleared["perceivedSeverity"] == "cleared"
    assert cleared["alarmClearedTime"] == later(4).isoformat() and cleared["alarmType"] == "qualityOfServiceAlarm"
    acked = by_id[str(a["acked"].id)]
    assert acked["ackState"] == "acknowledged" and acked["ackUserId"] == "alice" and acked["ackSystemId"] == "faultloop"
    assert acked["state"] == "updated" and acked["alarmEscalation"] is False  # warning < minor: not escalated
    assert acked["alarmType"] == "environmentalAlarm"
    maint = by_id[str(a["maint"].id)]
    assert maint["plannedOutageIndicator"] == "OutOfService" and maint["alarmType"] == "operationalViolation"
    hurt = by_id[str(a["hurt"].id)]
    assert hurt["serviceAffecting"] is True and [s["id"] for s in hurt["affectedService"]] == ["11", "12"]
    assert hurt["specificProblem"] == "peer 10.0.0.2 idle" and by_id[str(a["root"].id)]["serviceAffecting"] is False


def test_fields_projection_and_paging(client, auth, session, frozen):
    _network(session)
    r = client.get(f"{BASE}/alarm", params={"fields": "state,perceivedSeverity", "limit": 2, "offset": 1},
                   headers=auth("oss"))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["X-Total-Count"] == "6" and r.headers["X-Result-Count"] == "2"
    for doc in body:
        validate(doc, "AlarmFields")
        assert set(doc) == {"id", "href", "@type", "state", "perceivedSeverity"}
    every = client.get(f"{BASE}/alarm", headers=auth("oss")).json()
    assert _ids(body) == _ids(every)[1:3]
    last = client.get(f"{BASE}/alarm", params={"offset": 6}, headers=auth("oss"))
    assert last.json() == [] and last.headers["X-Total-Count"] == "6" and last.headers["X-Result-Count"] == "0"


def test_filters(client, auth, session, frozen):
    a = _network(session)

    def ids(**params) -> set[str]:
        r = client.get(f"{BASE}/alarm", params=params, headers=auth("oss"))
        assert r.status_code == 200, r.text
        validate_all(r.json(), "Alarm")
        assert r.headers["X-Total-Count"] == str(len(r.json()))
        return set(_ids(r.json()))

    def of(*names) -> set[str]:
        return {str(a[n].id) for n in names}

    assert ids(state="cleared") == of("cleared")
    assert ids(state="updated") == of("acked")
    assert ids(state="raised,updated") == of("root", "child", "acked", "maint", "hurt")
    assert ids(perceivedSeverity="critical") == of("root")
    assert ids(perceivedSeverity="warning") == of("acked", "maint")
    assert ids(**{"perceivedSeverity.ne": "cleared"}) == of("root", "child", "acked", "maint", "hurt")
    assert ids(**{"alarmedObject.id": "r2"}) == of("child")
    assert ids(ackState="acknowledged") == of("acked")
    assert ids(isRootCause="true") == of("root")
    assert ids(alarmType="qualityOfServiceAlarm") == of("cleared")
    assert ids(probableCause="device_down") == of("root")
    assert ids(plannedOutageIndicator="OutOfService") == of("maint")
    assert ids(serviceAffecting="true") == of("hurt")
    assert ids(**{"affectedService.id": "12"}) == of("hurt")
    assert ids(**{"parentAlarm.id": str(a["root"].id)}) == of("child")
    assert ids(**{"correlatedAlarm.id": str(a["child"].id)}) == of("root")
    assert ids(sourceSystemId="faultloop/poll") == of("cleared")
    assert ids(**{"alarmRaisedTime.gte": later(5).isoformat()}) == of("acked", "maint", "hurt")
    assert ids(**{"alarmRaisedTime.lt": later(1).isoformat().replace("+00:00", "Z")}) == of("root")
    assert ids(**{"alarmClearedTime.gt": later(0).isoformat()}) == of("cleared")
    assert ids(id=f"{a['root'].id},{a['hurt'].id},nope") == of("root", "hurt")


def test_sql_filters_agree_with_matches_on_the_documents(session, frozen):
    """Every filter is SQL for paging; the same filter over the TMF document must give the same set."""
    a = _network(session)
    docs = tmf_alarm.documents(session, list(session.scalars(select(Alarm))))
    cases = [
        "state=raised", "state.ne=cleared", "perceivedSeverity=warning,critical", "ackState=unacknowledged",
        "isRootCause=false", "serviceAffecting=false", "plannedOutageIndicator=InService", "alarmedObject.id.ne=r1",
        "alarmType=communicationsAlarm", "alarmType.ne=communicationsAlarm", "specificProblem=link_down",
        "externalAlarmId=link_down:r2:interface:Gi0/2", "alarmChangedTime.gte=2026-03-01T12:05:00Z",
        "alarmClearedTime.lte=2026-03-01T13:00:00Z", "affectedService.id.ne=11", f"parentAlarm.id.ne={a['root'].id}",
        f"correlatedAlarm.id={a['child'].id}", "sourceSystemId.ne=faultloop/trap", "probableCause=lossOfSignal",
    ]  # fmt: skip
    for raw in cases:
        name, value = raw.split("=", 1)
        query = parse_list_query([(name, value)], tmf_alarm.RESOURCE, page_max=500)
        got = {d["id"] for d in tmf_alarm.list_alarms(session, query)[0]}
        want = {d["id"] for d in docs if matches(d, query.filters)}
        assert got == want, raw
        assert 0 < len(want) < len(docs), raw  # every case tells alarms apart


def test_get_and_404(client, auth, session, frozen):
    a = _network(session)
    r = client.get(f"{BASE}/alarm/{a['hurt'].id}", headers=auth("oss"))
    assert r.status_code == 200
    validate(r.json(), "Alarm")
    assert r.json()["id"] == str(a["hurt"].id)
    r = client.get(f"{BASE}/alarm/{a['hurt'].id}", params={"fields": "ackState"}, headers=auth("oss"))
    assert set(r.json()) == {"id", "href", "@type", "ackState"}
    _error(client.get(f"{BASE}/alarm/999999", headers=auth("oss")), 404, "alarm '999999' not found")
    _error(client.get(f"{BASE}/alarm/abc", headers=auth("oss")), 404, "not found")
    _error(client.get(f"{BASE}/alarm/{a['hurt'].id}", params={"state": "raised"}, headers=auth("oss")), 400,
           "state: filters apply to the alarm list")  # fmt: skip


def test_bad_queries_are_tmf_400s(client, auth, session, frozen):
    _network(session)
    h = auth("oss")
    _error(client.get(f"{BASE}/alarm", params={"fields": "state,color"}, headers=h), 400, "unknown field", "color")
    _error(client.get(f"{BASE}/alarm", params={"colour": "red"}, headers=h), 400, "unknown filter attribute 'colour'")
    _error(client.get(f"{BASE}/alarm", params={"state": "burning"}, headers=h), 400, "filter state", "raised")
    _error(client.get(f"{BASE}/alarm", params={"isRootCause": "yes"}, headers=h), 400, "isRootCause", "true or false")
    _error(client.get(f"{BASE}/alarm", params={"alarmRaisedTime.gt": "yesterday"}, headers=h), 400,
           "filter alarmRaisedTime: expected an ISO 8601 date-time")  # fmt: skip
    err = _error(client.get(f"{BASE}/alarm", params={"alarmRaisedTime.gt": "2026-12-24T22:00:00"}, headers=h), 400,
                 "filter alarmRaisedTime: expected a date-time with a time zone (Z or +hh:mm)")  # fmt: skip
    assert err["field"] == "alarmRaisedTime"
    _error(client.get(f"{BASE}/alarm", params={"state.gt": "raised"}, headers=h), 400, "state: operator gt")
    _error(client.get(f"{BASE}/alarm", params={"limit": "0"}, headers=h), 400, "limit")
    _error(client.get(f"{BASE}/alarm", params={"sort": "id"}, headers=h), 400, "sort is not supported")


def test_ack_unack_clear_comment_tasks(client, auth, session, frozen):
    a = _network(session)
    h = auth("oss")
    pattern = [{"alarmedObject": {"id": "r2"}}, {"perceivedSeverity": "critical"}]
    r = client.post(f"{BASE}/ackAlarms", json={"alarmPattern": pattern, "ackUserId": "jdoe", "ackSystemId": "snow"},
                    headers=h)  # fmt: skip
    assert r.status_code == 201, r.text
    task = r.json()
    validate(task, "AckAlarms")
    assert sorted(x["id"] for x in task["ackedAlarm"]) == sorted([str(a["root"].id), str(a["child"].id)])
    assert task["ackUserId"] == "jdoe" and task["ackSystemId"] == "snow" and task["alarmPattern"] == pattern
    session.expire_all()
    assert session.get(Alarm, a["child"].id).ack_by == "oss-user"  # the token's user is recorded, as in the API
    # acknowledged alarms are not acknowledged twice: the same task now changes nothing
    again = client.post(f"{BASE}/ackAlarms", json={"alarmPattern": pattern}, headers=h).json()
    validate(again, "AckAlarms")
    assert again["ackedAlarm"] == [] and again["ackUserId"] == "oss-user"

    r = client.post(f"{BASE}/unAckAlarms", json={"alarmPattern": [{"ackState": "acknowledged"}]}, headers=h)
    assert r.status_code == 201, r.text
    validate(r.json(), "UnAckAlarms")
    assert sorted(x["id"] for x in r.json()["unAckedAlarm"]) == sorted(str(a[n].id) for n in ("root", "child", "acked"))
    unacked = client.get(f"{BASE}/alarm/{a['acked'].id}", headers=h).json()
    assert unacked["ackState"] == "unacknowledged" and unacked["ackUserId"] == "oss-user"

    r = client.post(f"{BASE}/clearAlarms", json={"alarmPattern": [{"alarmType": "operationalViolation"},
                                                                  {"id": str(a["cleared"].id)}],
                                                 "clearUserId": "jdoe"}, headers=h)  # fmt: skip
    assert r.status_code == 201, r.text
    validate(r.json(), "ClearAlarms")
    assert [x["id"] for x in r.json()["clearedAlarm"]] == [str(a["maint"].id)]  # the cleared one stays as it was
    doc = client.get(f"{BASE}/alarm/{a['maint'].id}", headers=h).json()
    validate(doc, "Alarm")
    assert doc["state"] == "cleared" and doc["clearUserId"] == "oss-user" and doc["alarmClearedTime"]

    body = {
        "alarmPattern": [{"serviceAffecting": True}],
        "comment": {"comment": "fibre cut, crew sent", "userId": "jdoe"},
    }
    r = client.post(f"{BASE}/commentAlarms", json=body, headers=h)
    assert r.status_code == 201, r.text
    validate(r.json(), "CommentAlarms")
    assert [x["id"] for x in r.json()["commentedAlarm"]] == [str(a["hurt"].id)]
    doc = client.get(f"{BASE}/alarm/{a['hurt'].id}", headers=h).json()
    validate(doc, "Alarm")
    assert [(c["comment"], c["userId"]) for c in doc["comment"]] == [("fibre cut, crew sent", "oss-user")]
    # same journal and audit as the JSON API's actions
    actions = [j.action for j in session.scalars(select(AlarmJournal).where(AlarmJournal.alarm_id == a["hurt"].id))]
    assert actions == ["comment"]
    assert session.scalar(select(AuditEntry).where(AuditEntry.action == "alarm.comment")) is not None


def test_bad_task_inputs_name_what_is_wrong_and_change_nothing(client, auth, session, frozen):
    a = _network(session)
    h = auth("oss")

    def bad(path: str, body, *needles: str) -> None:
        _error(client.post(f"{BASE}/{path}", json=body, headers=h), 400, *needles)

    bad("ackAlarms", {"alarmPattern": [{"colour": "red"}]}, "alarmPattern[0].colour", "not an attribute")
    bad("ackAlarms", {"alarmPattern": [{"alarmedObject": {"name": "r1"}}]}, "alarmPattern[0].alarmedObject.name")
    bad("ackAlarms", {"alarmPattern": [{"state": "raised"}, {"perceivedSeverity": "loud"}]},
        "alarmPattern[1].perceivedSeverity", "expected one of")  # fmt: skip
    bad("ackAlarms", {"alarmPattern": [{"isRootCause": "yes"}]}, "alarmPattern[0].isRootCause", "true or false")
    bad("ackAlarms", {"alarmPattern": ["r1"]}, "alarmPattern[0]", "expected an object")
    bad("ackAlarms", {"alarmPattern": [{}]}, "alarmPattern[0]", "every alarm")
    bad("ackAlarms", {"alarmPattern": [{"@type": "Alarm"}]}, "alarmPattern[0]", "every alarm")
    bad("ackAlarms", {"alarmPattern": []}, "alarmPattern")
    bad("ackAlarms", {}, "alarmPattern")
    bad("ackAlarms", {"alarmPattern": [{"alarmRaisedTime": "today"}]}, "alarmPattern[0].alarmRaisedTime", "ISO 8601")
    bad("ackAlarms", {"alarmPattern": [{"alarmRaisedTime": "2026-12-24T22:00:00"}]},
        "alarmPattern[0].alarmRaisedTime: expected a date-time with a time zone (Z or +hh:mm)")  # fmt: skip
    # read-only attributes of the task resource
    bad("ackAlarms", {"alarmPattern": [{"state": "raised"}], "ackedAlarm": [{"id": "1"}]}, "ackedAlarm")
    bad("clearAlarms", {"alarmPattern": [{"state": "raised"}], "id": "x"}, "id")
    bad("commentAlarms", {"alarmPattern": [{"state": "raised"}]}, "comment")
    bad("commentAlarms", {"alarmPattern": [{"state": "raised"}], "comment": {"comment": ""}}, "comment.comment")
    session.expire_all()
    assert session.scalars(select(Alarm.acknowledged).where(Alarm.id == a["root"].id)).one() is False
    assert session.scalar(select(AlarmJournal.id)) is None


def test_a_pattern_selecting_too_many_alarms_is_refused_whole(client, auth, session, frozen, monkeypatch):
    _network(session)
    monkeypatch.setattr(tmf_alarm, "MAX_TASK_ALARMS", 3)
    r = client.post(f"{BASE}/ackAlarms", json={"alarmPattern": [{"ackState": "unacknowledged"}]}, headers=auth("oss"))
    _error(r, 400, "more than 3 alarms")
    assert session.scalar(select(AlarmJournal.id)) is None


def test_rbac_oss_and_noc_may_other_roles_may_not(client, auth, session, frozen):
    a = _network(session)
    get_one = f"{BASE}/alarm/{a['root'].id}"
    task = {"alarmPattern": [{"id": str(a["root"].id)}], "comment": {"comment": "x"}}
    for role in ("oss", "noc", "admin"):
        assert client.get(f"{BASE}/alarm", headers=auth(role)).status_code == 200
        assert client.get(get_one, headers=auth(role)).status_code == 200
        assert client.post(f"{BASE}/commentAlarms", json=task, headers=auth(role)).status_code == 201
    for role in ("technician", "servicedesk", "viewer", "provisioner"):
        for method, path, body in (("GET", f"{BASE}/alarm", None), ("GET", get_one, None),
                                   ("POST", f"{BASE}/commentAlarms", task), ("POST", f"{BASE}/ackAlarms", task),
                                   ("POST", f"{BASE}/hub", {"callback": "https://oss.example.net/cb"})):  # fmt: skip
            r = client.request(method, path, json=body, headers=auth(role))
            if role == "provisioner" and method == "GET":  # it reads alarms in the JSON API too; it writes none
                assert r.status_code == 200, r.text
                continue
            _error(r, 403, role)
    _error(client.get(f"{BASE}/alarm"), 401)
    # the oss role reaches nothing outside the TMF APIs
    assert client.get("/api/v1/alarms", headers=auth("oss")).status_code == 403


def test_patch_runs_the_alarm_operations(client, auth, session, frozen, operator_hook):
    a = _network(session)
    h = auth("oss")
    url = f"{BASE}/alarm/{a['hurt'].id}"
    r = client.patch(url, json={"ackState": "acknowledged", "perceivedSeverity": "critical",
                                "comment": [{"comment": "looking", "userId": "jdoe"}]}, headers=h)  # fmt: skip
    assert r.status_code == 200, r.text
    doc = r.json()
    validate(doc, "Alarm")
    assert (doc["ackState"], doc["ackUserId"], doc["perceivedSeverity"], doc["state"]) == (
        "acknowledged", "oss-user", "critical", "updated")  # fmt: skip
    assert doc["alarmEscalation"] is True and [c["comment"] for c in doc["comment"]] == ["looking"]
    # the same value again changes nothing (a merge patch is idempotent)
    assert client.patch(url, json={"ackState": "acknowledged"}, headers=h).status_code == 200
    r = client.patch(url, json={"state": "cleared", "clearUserId": "jdoe"}, headers=h)
    assert r.status_code == 200
    validate(r.json(), "Alarm")
    assert r.json()["state"] == "cleared" and r.json()["clearUserId"] == "oss-user"
    actions = [j.action for j in session.scalars(select(AlarmJournal).where(AlarmJournal.alarm_id == a["hurt"].id)
                                                 .order_by(AlarmJournal.id))]  # fmt: skip
    assert actions == ["comment", "severity_changed", "acknowledged", "cleared"]
    # a cleared alarm's severity cannot change: the domain's 409, in the TMF shape
    _error(client.patch(url, json={"perceivedSeverity": "minor"}, headers=h), 409, "cleared")


def test_patch_of_a_read_only_or_unknown_attribute_is_a_400_naming_it(client, auth, session, frozen):
    a = _network(session)
    h = auth("oss")
    url = f"{BASE}/alarm/{a['root'].id}"
    for attribute in ("alarmRaisedTime", "isRootCause", "alarmedObject", "id", "affectedService"):
        body = _error(client.patch(url, json={"ackState": "acknowledged", attribute: "x"}, headers=h), 400,
                      f"{attribute} is read-only", "patchable: ackState")  # fmt: skip
        assert body["field"] == attribute
    _error(client.patch(url, json={"colour": "red"}, headers=h), 400, "colour is not an alarm attribute")
    _error(client.patch(url, json={"state": "raised"}, headers=h), 400, "state: expected one of cleared")
    _error(client.patch(url, json={"ackState": "yes"}, headers=h), 400, "ackState: expected one of")
    _error(client.patch(url, json={"comment": [{"text": "x"}]}, headers=h), 400, "comment[0].comment")
    _error(client.patch(url, json=[1, 2], headers=h), 400, "JSON object")
    _error(client.patch(f"{BASE}/alarm/999999", json={"ackState": "acknowledged"}, headers=h), 404, "not found")
    assert session.scalar(select(AlarmJournal.id)) is None  # nothing was changed by any of them
