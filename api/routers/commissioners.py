"""Commissioners (科技特派员), their farm assignments, and farms' alert-rule overrides.

Reads need ``read``, changes ``admin``. A farm-limited token sees the commissioners of its farms
and the rules of its farms, assigns only on its farms, and cannot create or change commissioners.
Secrets are write-only: answers say ``has_secret`` and mask robot URL keys.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, AdminFarm, Conn, Reader, ReadFarm, farm_access
from api.errors import AUTH_RESPONSES, CONFLICT, INVALID, NOT_FOUND, ApiError
from api.queries import commissioners as q
from api.queries.commissioners import Commissioner, FarmRules, Language, Severity
from api.queries.tokens import Principal
from api.routers.manage import StrictBody
from api.routers.registry import FarmId
from kernel.protocol import ID_REGEX
from kernel.webhook import Channel

router = APIRouter(tags=["commissioners and rules"], responses={**AUTH_RESPONSES, **INVALID, **NOT_FOUND})

Cid = Annotated[int, Path(ge=1, le=2**31 - 1, description="Commissioner id")]
Farm = Annotated[str, Path(pattern=ID_REGEX, description="Farm id")]
Name = Annotated[str, Field(min_length=1, max_length=64)]
Url = Annotated[str, Field(min_length=1, max_length=2000, description="Webhook / robot URL")]
Secret = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        description="whsec_<base64> (generic) or the robot's signing secret; stored, never returned",
    ),
]
Phone = Annotated[str, Field(min_length=1, max_length=32)]


class CommissionerCreate(StrictBody):
    name: Name
    channel: Channel
    url: Url
    secret: Secret | None = None
    language: Language = "zh"
    phone: Phone | None = None


class CommissionerUpdate(StrictBody):
    name: Name | None = None
    channel: Channel | None = None
    url: Url | None = None
    secret: Secret | None = Field(None, description="a new secret; null removes it; leave out to keep it")
    language: Language | None = None
    phone: Phone | None = None
    active: bool | None = Field(None, description="true brings a retired commissioner back")


class AssignmentBody(StrictBody):
    min_severity: Severity = "warning"
    escalation_order: Annotated[
        int, Field(ge=0, le=9, description="0: told at once; 1: after the delay; ...")
    ] = 0


def _unlimited(who: Principal) -> None:
    if who.farms is not None:
        raise ApiError(403, "forbidden", "a farm-limited token cannot create or change commissioners")


@router.get("/commissioners", response_model=list[Commissioner], summary="Commissioners and their farms")
def list_commissioners(
    conn: Conn, who: Reader, farm: FarmId | None = None, include_retired: bool = False
) -> list[Commissioner]:
    farm_access(who, farm)
    return q.list_commissioners(conn, farms=who.farm_list(), farm=farm, include_retired=include_retired)


@router.get("/commissioners/{commissioner_id}", response_model=Commissioner, summary="One commissioner")
def get_commissioner(conn: Conn, who: Reader, commissioner_id: Cid) -> Commissioner:
    return q.get_commissioner(conn, commissioner_id, farms=who.farm_list())


@router.post(
    "/commissioners",
    response_model=Commissioner,
    status_code=201,
    responses=CONFLICT,
    summary="Add a commissioner (the channel's URL and secret are checked as `agri commissioner add` does)",
)
def create_commissioner(conn: Conn, who: Admin, body: CommissionerCreate) -> Commissioner:
    _unlimited(who)
    return q.create_commissioner(conn, **body.model_dump())


@router.patch(
    "/commissioners/{commissioner_id}", response_model=Commissioner, responses=CONFLICT,
    summary="Change a commissioner (the result is checked as a whole)",
)  # fmt: skip
def update_commissioner(
    conn: Conn, who: Admin, commissioner_id: Cid, body: CommissionerUpdate
) -> Commissioner:
    _unlimited(who)
    return q.update_commissioner(conn, commissioner_id, body.model_dump(exclude_unset=True))


@router.post(
    "/commissioners/{commissioner_id}/retire",
    response_model=Commissioner,
    summary="Retire a commissioner: no more messages; assignments are kept",
)
def retire_commissioner(conn: Conn, who: Admin, commissioner_id: Cid) -> Commissioner:
    _unlimited(who)
    return q.retire_commissioner(conn, commissioner_id)


@router.put(
    "/farms/{farm}/commissioners/{commissioner_id}",
    response_model=Commissioner,
    summary="Assign a commissioner to a farm (or change the assignment's severity and order)",
)
def assign(conn: Conn, who: Admin, farm: Farm, commissioner_id: Cid, body: AssignmentBody) -> Commissioner:
    farm_access(who, farm)
    return q.assign(
        conn, commissioner_id, farm, min_severity=body.min_severity, order=body.escalation_order,
        farms=who.farm_list(),
    )  # fmt: skip


@router.delete(
    "/farms/{farm}/commissioners/{commissioner_id}",
    response_model=Commissioner,
    summary="Take a commissioner off a farm",
)
def unassign(conn: Conn, who: Admin, farm: Farm, commissioner_id: Cid) -> Commissioner:
    farm_access(who, farm)
    return q.unassign(conn, commissioner_id, farm, farms=who.farm_list())


# --- rules ---------------------------------------------------------------------------------------

_RULES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/toml": {"schema": {"type": "string"}},
        },
    }
}


@router.get(
    "/farms/{farm}/rules",
    response_model=FarmRules,
    summary="A farm's alert rules: its override and the effective rules (defaults of its kind + override)",
)
def get_rules(conn: Conn, farm: ReadFarm) -> FarmRules:
    return q.farm_rules_of(conn, farm)


@router.put(
    "/farms/{farm}/rules",
    response_model=FarmRules,
    summary="Set a farm's rule override (a rule set as JSON, or TOML with Content-Type: application/toml)",
    description="Validated as `agri alerts --check` validates a rule file: a mistake is a 400 naming"
    " the rule and the key (`rules[0] ('frost').below: ...`). Rules replace the defaults of the same"
    " name; `enabled = false` switches one off. The alert service picks the change up within a tick.",
    openapi_extra=_RULES_BODY,
)
async def put_rules(request: Request, conn: Conn, who: Admin, farm: AdminFarm) -> FarmRules:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid", "the rule set is not UTF-8 text", "rules") from None
    fmt: Literal["toml", "json"] = "toml" if "toml" in request.headers.get("content-type", "") else "json"
    by = f"api:{who.name}"
    return await run_in_threadpool(q.put_farm_rules, conn, farm, text, fmt, by)


@router.delete("/farms/{farm}/rules", response_model=FarmRules, summary="Drop a farm's rule override")
def delete_rules(conn: Conn, farm: AdminFarm) -> FarmRules:
    return q.delete_farm_rules(conn, farm)
