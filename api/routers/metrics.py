from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import runtime
from faultloop.errors import Unauthorized
from faultloop.metrics import REGISTRY
from faultloop.runtime import Runtime

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (Bearer FAULTLOOP_METRICS_TOKEN when set)",
    response_class=PlainTextResponse,
    responses={401: {"description": "FAULTLOOP_METRICS_TOKEN is set and was not sent"}},
)
def metrics(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> Response:
    expected = rt.settings.metrics_token
    if expected is not None and expected.get_secret_value():
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise Unauthorized("metrics need Authorization: Bearer <FAULTLOOP_METRICS_TOKEN>")
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
