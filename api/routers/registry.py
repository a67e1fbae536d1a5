"""Registry reads: farms, nodes, gateways, the metric catalog (writes: api.routers.manage)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import Conn, Reader, ReadFarm, farm_access
from api.errors import AUTH_RESPONSES, INVALID, NOT_FOUND
from api.queries import registry
from api.queries.models import Farm, FarmKind, Gateway, MetricInfo, NodeStatus, Page
from api.queries.registry import Listing
from kernel.protocol import ID_REGEX

router = APIRouter(tags=["registry"], responses={**AUTH_RESPONSES, **INVALID})

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page")]
FarmId = Annotated[str, Query(pattern=ID_REGEX, description="Farm id")]


async def listing(
    who: Reader,
    farm: FarmId | None = None,
    include_retired: bool = False,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Listing:
    """The query parameters of the node and gateway lists, limited to the caller's farms."""
    farm_access(who, farm)
    return Listing(
        farms=who.farm_list(), farm=farm, include_retired=include_retired, limit=limit, cursor=cursor
    )


Listed = Annotated[Listing, Depends(listing)]


@router.get("/farms", response_model=Page[Farm], summary="Farms, with commissioners and node counts")
def list_farms(
    conn: Conn,
    who: Reader,
    kind: FarmKind | None = None,
    include_retired: bool = False,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Farm]:
    return registry.list_farms(
        conn, farms=who.farm_list(), kind=kind, include_retired=include_retired, limit=limit, cursor=cursor
    )


@router.get("/farms/{farm}", response_model=Farm, responses=NOT_FOUND, summary="One farm")
def get_farm(conn: Conn, farm: ReadFarm) -> Farm:
    return registry.get_farm(conn, farm)


@router.get("/nodes", response_model=Page[NodeStatus], summary="Nodes with last seen, battery, link quality")
def list_nodes(conn: Conn, listing: Listed) -> Page[NodeStatus]:
    return registry.list_nodes(conn, **listing)


@router.get("/farms/{farm}/nodes/{node}", response_model=NodeStatus, responses=NOT_FOUND, summary="One node")
def get_node(conn: Conn, farm: ReadFarm, node: str) -> NodeStatus:
    return registry.get_node(conn, farm, node)


@router.get("/gateways", response_model=Page[Gateway], summary="Farm gateways")
def list_gateways(conn: Conn, listing: Listed) -> Page[Gateway]:
    return registry.list_gateways(conn, **listing)


@router.get(
    "/farms/{farm}/gateways/{gateway}", response_model=Gateway, responses=NOT_FOUND, summary="One gateway"
)
def get_gateway(conn: Conn, farm: ReadFarm, gateway: str) -> Gateway:
    return registry.get_gateway(conn, farm, gateway)


@router.get("/catalog/metrics", response_model=list[MetricInfo], summary="The metric catalog")
def catalog(conn: Conn, who: Reader) -> list[MetricInfo]:
    return registry.metrics(conn)
