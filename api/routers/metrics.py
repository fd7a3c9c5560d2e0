from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from api.deps import runtime
from faultloop.errors import Unauthorized
from faultloop.metrics import CONTENT_TYPE, exposition, metrics_token_ok
from faultloop.runtime import Runtime

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (Bearer FAULTLOOP_METRICS_TOKEN when set)",
    response_class=PlainTextResponse,
    responses={401: {"description": "FAULTLOOP_METRICS_TOKEN is set and was not sent"}},
)
def metrics(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> Response:
    if not metrics_token_ok(rt.settings, request.headers.get("authorization", "")):
        raise Unauthorized("metrics need Authorization: Bearer <FAULTLOOP_METRICS_TOKEN>")
    # a plain def: FastAPI runs it in a worker thread, so a scrape never holds the event loop
    return Response(exposition(), media_type=CONTENT_TYPE)
