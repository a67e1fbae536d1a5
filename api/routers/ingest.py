"""HTTP ingest for nodes and gateways without MQTT: the MQTT contract's payloads, same decoder
(kernel.decode), same writer (store.writer): same validation, dedup and dead letters."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import Ingester, State, farm_access
from api.errors import AUTH_RESPONSES, ApiError, Responses
from kernel.decode import Decoded, decode_message
from kernel.protocol import MAX_PAYLOAD_BYTES, Limits, batch_topic, up_topic
from store.writer import StoreUnavailable

router = APIRouter(tags=["ingest"], responses=AUTH_RESPONSES)

Ident = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z0-9-]+$")]
MAX_BATCH_BYTES = 1024 * 1024


class IngestResult(BaseModel):
    messages: int  # node messages accepted (a gateway batch carries many)
    stored: int  # readings stored
    duplicates: int  # readings already stored (a resend)
    rejected: dict[str, int]  # dead letters written, by reason


def _store(st: State, decoded: Decoded) -> JSONResponse:
    for r in decoded.rejects:
        r.source = "http:" + r.source
    for a in decoded.accepted:
        a.source = "http:" + a.source
    w = st.take_writer()
    try:
        res = w.write([decoded])
    except StoreUnavailable as exc:
        w.close()
        raise ApiError(503, "database_unavailable", f"database unavailable, retry: {exc}") from None
    st.give_writer(w)
    body = IngestResult(
        messages=res.messages, stored=res.stored, duplicates=res.duplicates, rejected=dict(res.rejected)
    )
    # a message refused as a whole (bad JSON, unknown version...) is a dead letter and a 400
    status = 400 if decoded.rejects and not decoded.accepted else 200
    return JSONResponse(body.model_dump(), status_code=status)


def _decode_store(st: State, topic: str, body: bytes) -> JSONResponse:
    return _store(st, decode_message(topic, body, _limits(st)))


def _limits(st: State) -> Limits:
    c = st.config
    return Limits(now=time.time(), skew_s=c.clock_skew_s, max_age_s=c.retention_days * 86400.0)


_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "wire format v1 `up`"}}},
    }
}
_ZLIB_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_RESULTS: Responses = {
    200: {"model": IngestResult, "description": "Stored (duplicates and per-reading rejects counted)"},
    400: {"model": IngestResult, "description": "The message was refused as a whole (kept as a dead letter)"},
}


@router.post(
    "/ingest/{farm}/{node}/up",
    summary="A node message (`agri/v1/{farm}/{node}/up` payload)",
    response_model=IngestResult,
    responses=_RESULTS,
    openapi_extra=_JSON_BODY,
)
async def node_up(request: Request, st: State, who: Ingester, farm: Ident, node: Ident) -> JSONResponse:
    farm_access(who, farm)
    body = await request.body()
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ApiError(413, "too_large", f"a node message is at most {MAX_PAYLOAD_BYTES} bytes")
    return await run_in_threadpool(_decode_store, st, up_topic(farm, node), body)


@router.post(
    "/ingest/{farm}/gw/{gateway}/batch",
    summary="A gateway batch (zlib envelope of `agri/v1/{farm}/gw/{gateway}/batch`)",
    response_model=IngestResult,
    responses=_RESULTS,
    openapi_extra=_ZLIB_BODY,
)
async def gateway_batch(
    request: Request, st: State, who: Ingester, farm: Ident, gateway: Ident
) -> JSONResponse:
    farm_access(who, farm)
    body = await request.body()
    if len(body) > MAX_BATCH_BYTES:
        raise ApiError(413, "too_large", f"a batch is at most {MAX_BATCH_BYTES} bytes")
    return await run_in_threadpool(_decode_store, st, batch_topic(farm, gateway), body)
