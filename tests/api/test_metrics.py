from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr


def test_metrics_parse(client):
    r = client.get("/metrics")
    assert r.status_code == 200
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert "faultloop_build_info" in names


def test_metrics_token(client, runtime):
    runtime.settings.metrics_token = SecretStr("scrape-me")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200
