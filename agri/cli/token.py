"""`agri token create|list|revoke`: API bearer tokens (stored hashed; the token is shown once)."""

from __future__ import annotations

import json
from typing import Annotated

import psycopg
import typer
from rich.markup import escape

from agri.cli.common import console, fail, settings
from agri.stack.manager import Stack
from api.queries import tokens
from api.queries.errors import QueryError

token_app = typer.Typer(help="API tokens: create, list, revoke", no_args_is_help=True)


def _connect() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(Stack(settings()).database_url(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        fail(f"database not reachable ({str(exc).strip().splitlines()[0]}): start the stack with `agri up`")


@token_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name for the token (who or what uses it)")],
    scope: Annotated[
        list[str], typer.Option("--scope", "-s", help="read | operate | admin | ingest (repeatable)")
    ],
    farm: Annotated[
        list[str] | None, typer.Option("--farm", "-f", help="Limit the token to this farm (repeatable)")
    ] = None,
) -> None:
    """Create a token and print it once; only its SHA-256 hash is stored."""
    with _connect() as conn:
        try:
            secret, info = tokens.create(conn, name, scope, farm or None)
        except QueryError as exc:
            fail(str(exc), 2)
    farms = ", ".join(info.farms) if info.farms else "all farms"
    console.print(
        f"[green]✓[/] token {escape(info.name)} (id {info.id}): scopes {', '.join(info.scopes)}; {farms}",
        highlight=False,
    )
    console.print("store it now, it is not shown again:", highlight=False)
    print(secret, flush=True)


@token_app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Also revoked tokens")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array")] = False,
) -> None:
    """List tokens (never their secrets)."""
    with _connect() as conn:
        infos = tokens.list_tokens(conn, include_revoked=all_)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": i.id,
                        "name": i.name,
                        "scopes": list(i.scopes),
                        "farms": list(i.farms) if i.farms is not None else None,
                        "created_at": i.created_at.isoformat(),
                        "last_used_at": i.last_used_at.isoformat() if i.last_used_at else None,
                        "revoked_at": i.revoked_at.isoformat() if i.revoked_at else None,
                    }
                    for i in infos
                ]
            )
        )
        return
    for i in infos:
        state = f"revoked {i.revoked_at:%Y-%m-%d %H:%M}" if i.revoked_at else "active"
        used = f"{i.last_used_at:%Y-%m-%d %H:%M}" if i.last_used_at else "never"
        farms = ",".join(i.farms) if i.farms else "*"
        console.print(
            f"{i.id:>4}  {escape(i.name):<24} {','.join(i.scopes):<22} farms={farms:<20}"
            f" used={used}  {state}",
            highlight=False,
        )


@token_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="Token name or id")]) -> None:
    """Revoke a token: it stops working at once."""
    with _connect() as conn:
        try:
            info = tokens.revoke(conn, name)
        except QueryError as exc:
            fail(str(exc))
    console.print(f"[green]✓[/] token {escape(info.name)} (id {info.id}) revoked", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
