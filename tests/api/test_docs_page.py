"""/docs loads no third-party script and keeps the CSP (issue 15, item 9)."""

import re

from api.web.security import CSP


def test_docs_page_loads_only_local_assets_under_the_csp(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == CSP
    sources = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert sources and all(s.startswith("/static/") for s in sources), sources
    assert "<script>" not in r.text and "style=" not in r.text  # nothing inline for the CSP to block
    for path in sources:
        asset = client.get(path)
        assert asset.status_code == 200 and len(asset.content) > 100, path
    assert b"SwaggerUIBundle" in client.get("/static/swagger/swagger-ui-bundle.js").content


def test_the_explorer_reads_the_openapi_document(client):
    init = client.get("/static/js/swagger-init.js").text
    assert 'url: "/openapi.json"' in init
    assert client.get("/openapi.json").status_code == 200


def test_no_redoc_page_with_a_cdn_script(client):
    assert client.get("/redoc").status_code == 404
