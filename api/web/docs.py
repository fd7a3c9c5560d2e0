"""The API explorer at /docs: Swagger UI served from this process, under the dashboard's CSP.

FastAPI's own /docs page loads Swagger UI from a CDN and starts it with an inline script,
which a strict Content-Security-Policy forbids (and a third-party script is one more party
to trust). Here the Swagger UI files come from the ``fastapi-offline`` package (its
``static`` folder: swagger-ui-bundle.js and swagger-ui.css, Apache-2.0), the start-up
script is ``static/js/swagger-init.js``, and the page has no inline script or style."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"
SWAGGER_PREFIX = "/static/swagger"

router = APIRouter(include_in_schema=False)

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>faultloop API</title>
<link rel="stylesheet" href="{SWAGGER_PREFIX}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_PREFIX}/swagger-ui-bundle.js"></script>
<script src="/static/js/swagger-init.js"></script>
</body>
</html>
"""


@router.get("/docs", response_class=HTMLResponse)
def docs() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-cache"})
