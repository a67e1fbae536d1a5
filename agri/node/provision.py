"""`agri node add`: register a node, give it broker credentials, write its config file.

Order: every input is validated first; then the farm/node/series rows are written in one
transaction; then the node's MQTT account and ACL (embedded broker: ``accounts.json`` -> passwd +
acl, then SIGHUP so they apply without a restart; external broker: what to configure is returned
for the operator); then the config file (mode 0600: it holds the password). Re-running with the
same output file keeps the node's password, so provisioning is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from agri.node import config as nodecfg
from agri.node import ota
from agri.stack.mqtt_auth import Account, new_password, node_username, verify_password
from kernel.catalog import FARM_KINDS
from kernel.protocol import check_id
from store import registry


class ProvisionError(RuntimeError):
    """Provisioning cannot proceed; the message says what to do."""


@dataclass
class Request:
    farm: str
    node: str
    farm_kind: str | None = None
    farm_name: str | None = None
    node_name: str | None = None
    profile: str | None = None  # sensor profile (a farm kind); default: the farm's kind
    interval: int | None = None
    broker_host: str | None = None
    broker_port: int | None = None
    wifi_ssid: str | None = None
    wifi_password: str = ""
    out: Path | None = None
    rotate: bool = False

    def check(self) -> None:
        check_id("farm", self.farm)
        check_id("node", self.node)
        for what, kind in (("--farm-kind", self.farm_kind), ("--profile", self.profile)):
            if kind is not None and kind not in FARM_KINDS:
                raise ValueError(f"{what} {kind!r} must be one of {', '.join(FARM_KINDS)}")
        if self.farm_name is not None and not 0 < len(self.farm_name.strip()) <= 200:
            raise ValueError("--farm-name must be 1..200 characters")
        if self.node_name is not None and not 0 < len(self.node_name.strip()) <= 200:
            raise ValueError("--name must be 1..200 characters")
        if self.interval is not None and not 1 <= self.interval <= 86400:
            raise ValueError(f"--interval {self.interval} must be 1..86400 seconds")
        if self.broker_port is not None and not 1 <= self.broker_port <= 65535:
            raise ValueError(f"--broker-port {self.broker_port} must be 1..65535")


@dataclass
class Result:
    farm: str
    node: str
    farm_created: bool
    config_path: Path
    username: str
    password_rotated: bool
    metrics: list[str]
    broker_reloaded: bool | None  # None: external broker
    external_setup: list[str] = field(default_factory=list)  # what to configure on an external broker
    warnings: list[str] = field(default_factory=list)


def _existing_password(path: Path, farm: str, node: str, pw_hash: str | None) -> str | None:
    """The password in an earlier config for this node, if it still matches the account."""
    if pw_hash is None or not path.exists():
        return None
    try:
        old = nodecfg.load(path)
    except nodecfg.ConfigError:
        return None
    pw = old.broker.password
    if old.farm == farm and old.node == node and pw and verify_password(pw, pw_hash):
        return pw
    return None


def provision(stack: Any, req: Request) -> Result:
    """Provision one node against ``stack`` (an :class:`agri.stack.manager.Stack`)."""
    req.check()
    s = stack.s
    out = req.out or stack.home / "nodes" / req.farm / f"{req.node}.json"
    warnings: list[str] = []
    external = not s.embedded_mqtt
    ext_url = s.mqtt() if external else None
    host = req.broker_host or (ext_url.host if ext_url else "127.0.0.1")
    port = req.broker_port or (ext_url.port if ext_url else s.mqtt_port)
    if host in ("127.0.0.1", "localhost") and req.broker_host is None:
        warnings.append(
            f"broker host is {host}: fine for `agri node emulate` here; a real node needs an address it "
            "can reach (--broker-host, e.g. this machine's LAN IP or the farm gateway)"
        )

    try:
        conn = psycopg.connect(stack.database_url(), connect_timeout=5)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProvisionError(f"database not reachable ({first}): start the stack with `agri up`") from None

    with conn:
        farm = registry.get_farm(conn, req.farm)
        farm_created = farm is None
        if farm is None:
            if not req.farm_kind or not req.farm_name:
                raise ProvisionError(
                    f"farm {req.farm!r} is not registered: give --farm-kind "
                    f"({'|'.join(FARM_KINDS)}) and --farm-name to create it"
                )
            farm = registry.upsert_farm(conn, req.farm, req.farm_name.strip(), req.farm_kind)
        else:
            if req.farm_kind and req.farm_kind != farm.kind:
                raise ProvisionError(
                    f"farm {req.farm!r} is a {farm.kind}, not {req.farm_kind}: drop --farm-kind or use "
                    "another farm id"
                )
            if req.farm_name and req.farm_name.strip() != farm.name:
                farm = registry.upsert_farm(
                    conn, req.farm, req.farm_name.strip(), farm.kind, lat=farm.lat, lon=farm.lon, tz=farm.tz
                )
        kind = req.profile or farm.kind

        auth = stack.mqtt_auth() if not external else None
        username = node_username(req.farm, req.node)
        acc = auth.get(username) if auth else None
        password = (
            None if req.rotate else _existing_password(out, req.farm, req.node, acc.pw_hash if acc else None)
        )
        rotated = password is None and acc is not None
        password = password or new_password()

        try:
            cfg = nodecfg.for_node(
                req.farm, req.node, kind, interval=req.interval, host=host, port=port, user=username,
                password=password, wifi_ssid=req.wifi_ssid, wifi_password=req.wifi_password,
                ota_key=ota.node_key(ota.master_key(stack.home), req.farm, req.node),
            )  # fmt: skip
        except nodecfg.ConfigError as exc:
            raise ProvisionError(str(exc)) from None
        metrics = cfg.metrics()
        registry.upsert_node(
            conn,
            req.farm,
            req.node,
            name=req.node_name.strip() if req.node_name else None,
            profile=kind,
            metrics=[*metrics, "rssi_dbm"],
        )

    reloaded: bool | None = None
    setup: list[str] = []
    if auth is not None:
        auth.add_node(req.farm, req.node, password)
        auth.save()
        reloaded = stack.broker().reload()
        if not reloaded:
            warnings.append(
                "the embedded broker is not running: the account applies when it starts (agri up)"
            )
    else:
        acl = Account(username, "", "node", req.farm, req.node).acl_lines()
        setup = [
            f"create MQTT user {username!r} with the password in {out}",
            *(f"ACL for {username}: {line}" for line in acl),
        ]
    try:
        nodecfg.write(cfg, out)
    except OSError as exc:
        raise ProvisionError(f"cannot write {out}: {exc.strerror}") from None
    return Result(
        farm=req.farm,
        node=req.node,
        farm_created=farm_created,
        config_path=out,
        username=username,
        password_rotated=rotated,
        metrics=metrics,
        broker_reloaded=reloaded,
        external_setup=setup,
        warnings=warnings,
    )
