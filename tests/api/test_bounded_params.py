"""Integers a client sends in a path or a query are bounded (issue 15, item 15).

An OpenAPI fuzzer found 500s: ids beyond 64 bits reached SQLite, which raised
``OverflowError``. Every one is now a 422 naming the parameter."""

from __future__ import annotations

import typing

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from api.main import create_api
from api.params import MAX_ID

HUGE = 2**64 + 1  # beyond any 64-bit integer


@pytest.mark.parametrize(
    ("method", "path", "param"),
    [
        ("POST", f"/api/v1/orders/{HUGE}/cancel", "order_id"),
        ("DELETE", f"/api/v1/maintenance/{HUGE}", "window_id"),
        ("GET", f"/api/v1/devices/1/config-backups/{HUGE}", "backup_id"),
        ("GET", f"/api/v1/devices/{HUGE}/config-backups/1/diff", "device_id"),
        ("GET", f"/api/v1/devices/1/config-backups/1/diff?against={HUGE}", "against"),
        ("GET", f"/api/v1/alarms?offset={HUGE}", "offset"),
        ("GET", f"/api/v1/alarms/{MAX_ID + 1}", "alarm_id"),
    ],
)
def test_an_id_beyond_64_bits_is_a_422_naming_the_parameter(client, auth, method, path, param):
    r = client.request(method, path, headers=auth("admin"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == [param]
    assert "less than or equal to" in r.json()["detail"]


def test_the_largest_id_is_accepted_and_not_found(client, auth):
    r = client.get(f"/api/v1/alarms/{MAX_ID}", headers=auth("admin"))
    assert r.status_code == 404, r.text


def _params(dependant):
    yield from dependant.path_params
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _params(sub)


def _bounds(metadata) -> tuple[bool, bool]:
    low = any(hasattr(m, "ge") or hasattr(m, "gt") for m in metadata)
    high = any(hasattr(m, "le") or hasattr(m, "lt") for m in metadata)
    return low, high


def _item_metadata(annotation) -> list:
    """The constraints of ``list[Annotated[int, Field(...)]]``'s items."""
    for arg in typing.get_args(annotation):
        for extra in typing.get_args(arg)[1:]:
            yield from getattr(extra, "metadata", [extra])


def test_every_integer_path_and_query_parameter_is_bounded(runtime):
    """Dashboard routes too (not in the OpenAPI document): a new route with a bare ``int``
    id fails here."""
    unbounded = []
    checked = 0
    for ctx in iter_route_contexts(create_api(runtime).routes):
        route = ctx.original_route
        if not isinstance(route, APIRoute):
            continue
        for field in _params(route.dependant):
            annotation = field.field_info.annotation
            if "int" not in str(annotation):
                continue
            checked += 1
            low, high = _bounds(field.field_info.metadata)
            if typing.get_origin(annotation) is list:
                low, high = _bounds(list(_item_metadata(annotation)))
            if not (low and high):
                unbounded.append(f"{sorted(route.methods)} {route.path} {field.name}")
    assert checked > 50 and unbounded == []
