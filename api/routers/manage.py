"""Registry changes (scope ``operate``): farms, nodes, gateways; retire; bulk node import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import Conn, OperateFarm, Operator
from api.errors import AUTH_RESPONSES, CONFLICT, INVALID, NOT_FOUND, ApiError
from api.queries import manage, nodeimport
from api.queries.models import Farm, FarmKind, Gateway, NodeStatus
from kernel.protocol import ID_REGEX

router = APIRouter(
    tags=["registry changes"], responses={**AUTH_RESPONSES, **INVALID, **NOT_FOUND, **CONFLICT}
)

Id = Annotated[str, Field(pattern=ID_REGEX)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
Metric = Annotated[str, Field(min_length=1, max_length=64)]


class StrictBody(BaseModel):
    """A request body that refuses unknown keys (a typo is a 422, not silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class FarmCreate(StrictBody):
    id: Id
    name: Name
    kind: FarmKind
    lat: Lat | None = None
    lon: Lon | None = None
    elevation_m: Annotated[float, Field(ge=-500, le=9000)] | None = None
    tz: Annotated[str, Field(min_length=1, max_length=64)] = "Asia/Shanghai"
    boundary: dict[str, Any] | None = Field(None, description="GeoJSON Polygon or MultiPolygon (WGS 84)")


class FarmUpdate(StrictBody):
    name: Name | None = None
    kind: FarmKind | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    elevation_m: Annotated[float, Field(ge=-500, le=9000)] | None = None
    tz: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    boundary: dict[str, Any] | None = None


class NodeCreate(StrictBody):
    node_id: Id
    name: Name | None = None
    profile: FarmKind | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    metrics: Annotated[list[Metric], Field(max_length=64)] = []
    firmware_version: Annotated[str, Field(max_length=64)] | None = None


class NodeUpdate(StrictBody):
    name: Name | None = None
    profile: FarmKind | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    metrics: Annotated[list[Metric], Field(max_length=64)] | None = Field(None, description="series to add")
    firmware_version: Annotated[str, Field(max_length=64)] | None = None


class GatewayCreate(StrictBody):
    gateway_id: Id
    name: Name | None = None
    lat: Lat | None = None
    lon: Lon | None = None


class GatewayUpdate(StrictBody):
    name: Name | None = None
    lat: Lat | None = None
    lon: Lon | None = None


@router.post("/farms", response_model=Farm, status_code=201, summary="Register a farm")
def create_farm(conn: Conn, who: Operator, body: FarmCreate) -> Farm:
    if who.farms is not None:
        raise ApiError(403, "forbidden", "a farm-limited token cannot create farms")
    return manage.create_farm(
        conn, body.id, body.name, body.kind, **body.model_dump(exclude={"id", "name", "kind"})
    )


@router.patch(
    "/farms/{farm}", response_model=Farm, summary="Change a farm (a new time zone rebuilds its days)"
)
def update_farm(conn: Conn, farm: OperateFarm, body: FarmUpdate) -> Farm:
    return manage.update_farm(conn, farm, body.model_dump(exclude_unset=True))


@router.post("/farms/{farm}/retire", response_model=Farm, summary="Retire a farm with its nodes and gateways")
def retire_farm(conn: Conn, farm: OperateFarm) -> Farm:
    return manage.retire_farm(conn, farm)


@router.post("/farms/{farm}/nodes", response_model=NodeStatus, status_code=201, summary="Register a node")
def create_node(conn: Conn, farm: OperateFarm, body: NodeCreate) -> NodeStatus:
    return manage.create_node(conn, farm, body.node_id, **body.model_dump(exclude={"node_id"}))


@router.patch("/farms/{farm}/nodes/{node}", response_model=NodeStatus, summary="Change a node")
def update_node(conn: Conn, farm: OperateFarm, node: str, body: NodeUpdate) -> NodeStatus:
    return manage.update_node(conn, farm, node, body.model_dump(exclude_unset=True))


@router.post("/farms/{farm}/nodes/{node}/retire", response_model=NodeStatus, summary="Retire a node")
def retire_node(conn: Conn, farm: OperateFarm, node: str) -> NodeStatus:
    return manage.retire_node(conn, farm, node)


@router.post("/farms/{farm}/gateways", response_model=Gateway, status_code=201, summary="Register a gateway")
def create_gateway(conn: Conn, farm: OperateFarm, body: GatewayCreate) -> Gateway:
    return manage.create_gateway(conn, farm, body.gateway_id, **body.model_dump(exclude={"gateway_id"}))


@router.patch("/farms/{farm}/gateways/{gateway}", response_model=Gateway, summary="Change a gateway")
def update_gateway(conn: Conn, farm: OperateFarm, gateway: str, body: GatewayUpdate) -> Gateway:
    return manage.update_gateway(conn, farm, gateway, body.model_dump(exclude_unset=True))


@router.post("/farms/{farm}/gateways/{gateway}/retire", response_model=Gateway, summary="Retire a gateway")
def retire_gateway(conn: Conn, farm: OperateFarm, gateway: str) -> Gateway:
    return manage.retire_gateway(conn, farm, gateway)


_SHEET = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                "schema": {"type": "string", "format": "binary"}
            },
        },
    }
}


@router.post(
    "/nodes/import",
    response_model=nodeimport.ImportReport,
    summary="Bulk node provisioning from CSV or Excel: dry run, or apply all-or-nothing",
    description="Send the file as the body (`curl --data-binary @nodes.csv -H 'Content-Type: text/csv'`)."
    " Columns: " + ", ".join(nodeimport.COLUMNS) + ". With `dry_run=false` the nodes are registered only if"
    " every row is good, and each node's broker password is in the answer, once.",
    openapi_extra=_SHEET,
    responses={400: {"model": nodeimport.ImportReport, "description": "Bad rows; nothing applied"}},
)
async def import_nodes(
    request: Request,
    conn: Conn,
    who: Operator,
    dry_run: Annotated[bool, Query(description="Only check the sheet")] = True,
    filename: Annotated[
        str, Query(max_length=200, description="Name of the file (.csv, .xlsx)")
    ] = "nodes.csv",
) -> Any:
    data = await request.body()
    try:
        report = await run_in_threadpool(
            nodeimport.run, conn, filename, data, apply=not dry_run, farms=who.farm_list()
        )
    except nodeimport.ImportRejected as exc:
        return JSONResponse(exc.report.model_dump(mode="json"), status_code=400)
    return report
