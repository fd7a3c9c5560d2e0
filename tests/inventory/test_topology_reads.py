"""The read seams other domains use instead of inventory.models (alarms' topology and device
scope, ticketing's link peers), and the topology sketch the alarm replay writes."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from inventory import queries, service
from inventory.errors import InvalidInput
from inventory.models import Device, Interface, Link, Site
from inventory.schemas import SketchDevice, SketchLink

SKETCH = [
    SketchDevice("core1", "core", site="pop-1", tags=("backbone",)),
    SketchDevice("dist1", "distribution", site="pop-1", parents=("core1",)),
    SketchDevice("acc1", "access", parents=("dist1",)),
]
NAMES = {"core1", "dist1", "acc1"}
LINKS = [SketchLink(("core1", "Gi0/1"), ("dist1", "Gi0/0")), SketchLink(("dist1", "Gi0/1"), ("acc1", "Gi0/0"))]


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_a_sketch_reads_back_as_the_topology_alarms_correlate_over(session):
    service.sketch_topology(session, devices=SKETCH, links=LINKS)
    topo = queries.topology(session)
    mine = [d for d in topo.devices if d.hostname in NAMES]  # other tests' committed rows may be there too
    assert [d.hostname for d in mine] == ["core1", "dist1", "acc1"]
    core = mine[0]
    assert (core.role, core.site, core.tags) == ("core", "pop-1", ("backbone",))
    assert mine[2].site is None
    ends = {frozenset((link.a, link.b)) for link in topo.links if link.a[0] in NAMES}
    assert ends == {
        frozenset({("core1", "Gi0/1"), ("dist1", "Gi0/0")}),
        frozenset({("dist1", "Gi0/1"), ("acc1", "Gi0/0")}),
    }
    assert sorted(d for d in topo.dependencies if d[0] in NAMES) == [("acc1", "dist1"), ("dist1", "core1")]
    assert session.scalar(select(func.count()).select_from(Site).where(Site.name == "pop-1")) == 1


def test_device_scope_and_link_peer(session):
    service.sketch_topology(session, devices=SKETCH, links=LINKS)
    scope = queries.device_scope(session, "dist1")
    assert scope is not None and (scope.hostname, scope.role, scope.site) == ("dist1", "distribution", "pop-1")
    assert queries.device_scope(session, "nope") is None
    assert queries.link_peer(session, "dist1", "Gi0/1") == ("acc1", "Gi0/0")
    assert queries.link_peer(session, "acc1", "Gi0/0") == ("dist1", "Gi0/1")
    assert queries.link_peer(session, "acc1", "Gi0/9") is None  # no such interface
    assert sorted(queries.hostnames_at_site(session, "pop-1")) == ["core1", "dist1"]
    assert queries.hostnames_at_site(session, "nowhere") == []


def test_an_inactive_link_is_not_in_the_topology(session):
    service.sketch_topology(session, devices=SKETCH, links=LINKS[:1])
    session.execute(Link.__table__.update().values(state="stale"))
    assert [link for link in queries.topology(session).links if link.a[0] in NAMES] == []
    # the link peer still answers: ticketing joins both ends of a link in any state
    assert queries.link_peer(session, "core1", "Gi0/1") == ("dist1", "Gi0/0")


@pytest.mark.parametrize(
    ("devices", "links", "field", "message"),
    [
        ([SketchDevice("a", "access", parents=("ghost",))], [], "parents", "unknown device 'ghost' (of a)"),
        ([SketchDevice("a", "access")], [SketchLink(("a", "x"), ("ghost", "y"))], "links", "unknown device 'ghost'"),
    ],
)
def test_a_sketch_naming_an_unknown_device_is_refused_before_any_write(session, devices, links, field, message):
    before = (_count(session, Device), _count(session, Interface), _count(session, Link))
    with pytest.raises(InvalidInput) as err:
        service.sketch_topology(session, devices=devices, links=links)
    assert err.value.field == field and message in str(err.value)
    assert (_count(session, Device), _count(session, Interface), _count(session, Link)) == before
