"""`agri up` / `agri down` / `agri status`: the whole stack on one machine.

Embedded mode (no ``AGRI_DATABASE_URL`` / ``AGRI_MQTT_URL``): a private PostgreSQL+TimescaleDB
cluster and a private Mosquitto under ``$AGRI_HOME``, then the services. With the URLs set, the
external services are used and none is started for them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from agri.node import ota
from agri.stack.mosquitto import Broker
from agri.stack.mqtt_auth import MqttAuth, Role, verify_password
from agri.stack.postgres import PgCluster
from agri.stack.proc import StackError, read_pid, spawn, tail, terminate, wait_for
from agri.stack.services import SERVICES, ServiceSpec, available_services
from gateway.status import status_components
from kernel.mqtt import probe
from kernel.settings import MqttUrl, Settings, redact_dsn
from store.migrate import migrate

SERVICE_ROLES: tuple[Role, ...] = ("admin", "ingest", "api", "monitor")


class Secrets:
    """Generated credentials of the embedded stack, in ``$AGRI_HOME/secrets.json`` (mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str, nbytes: int = 24) -> str:
        if key not in self._data:
            self._data[key] = secrets.token_urlsafe(nbytes)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(self._data, f, indent=1)
            os.replace(self.path.with_suffix(".tmp"), self.path)
        return self._data[key]


@dataclass
class ComponentStatus:
    state: str  # running | stopped | error | external
    address: str | None = None
    detail: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"state": self.state, "address": self.address}
        d.update(self.detail or {})
        return d


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.home = settings.home
        self.secrets = Secrets(self.home / "secrets.json")

    # --- components ---------------------------------------------------------------------------

    def pg(self) -> PgCluster:
        return PgCluster(root=self.home / "pg", port=self.s.pg_port, password=self.secrets.get("pg_password"))

    def broker(self) -> Broker:
        return Broker(root=self.home / "mqtt", port=self.s.mqtt_port)

    def database_url(self) -> str:
        return self.s.database_url or self.pg().dsn()

    def mqtt_url(self, role: str = "admin") -> str:
        """URL with credentials of a service account (embedded), or the configured external URL."""
        if self.s.mqtt_url:
            return self.s.mqtt_url
        return self.broker().url(f"agri-{role}", self.secrets.get(f"mqtt_{role}"))

    def mqtt_auth(self) -> MqttAuth:
        return MqttAuth(self.home / "mqtt")

    def ensure_service_accounts(self) -> None:
        auth = self.mqtt_auth()
        changed = False
        for role in SERVICE_ROLES:
            user, pw = f"agri-{role}", self.secrets.get(f"mqtt_{role}")
            acc = auth.get(user)

            if acc is None or acc.role != role or not verify_password(pw, acc.pw_hash):
                auth.set(user, pw, role)
                changed = True
        if changed or not auth.passwd.exists():
            auth.save()

    # --- lifecycle ----------------------------------------------------------------------------

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            os.chmod(self.home, 0o755)

    def up(self, services: list[str] | None = None, log: Any = print) -> None:

        self._prepare_home()
        if self.s.embedded_db:
            pg = self.pg()
            was = pg.running()
            pg.start()
            pg.create_database()
            log(f"database: {'already running' if was else 'started'} at {redact_dsn(pg.dsn())}")
        if self.s.embedded_mqtt:
            self.ensure_service_accounts()
            br = self.broker()
            was = br.running()
            br.start()
            log(f"broker: {'already running' if was else 'started'} at {br.url()}")
        applied = migrate(self.database_url())
        log(f"schema: {'applied migrations ' + str(applied) if applied else 'up to date'}")
        wanted = [s for s in available_services() if services is None or s.name in services]
        for spec in wanted:
            self._start_service(spec, log)

    def _service_env(self, spec: ServiceSpec) -> dict[str, str]:
        env = dict(os.environ)
        env["AGRI_HOME"] = str(self.home)
        env["AGRI_DATABASE_URL"] = self.database_url()
        env["AGRI_MQTT_URL"] = self.mqtt_url(spec.mqtt_role or "monitor")
        env.setdefault(
            "AGRI_SECRET_KEY",
            self.s.secret_key.get_secret_value() if self.s.secret_key else self.secrets.get("secret_key", 32),
        )
        env.setdefault(
            "AGRI_ADMIN_TOKEN",
            self.s.admin_token.get_secret_value()
            if self.s.admin_token
            else self.secrets.get("admin_token", 32),
        )
        return env

    def _pidfile(self, name: str) -> Path:
        return self.home / "run" / f"{name}.pid"

    def _logfile(self, name: str) -> Path:
        return self.home / "log" / f"{name}.log"

    def _start_service(self, spec: ServiceSpec, log: Any) -> None:
        pidfile = self._pidfile(spec.name)
        if read_pid(pidfile) is not None:
            log(f"{spec.name}: already running")
            return
        proc = spawn(spec.argv(self.s), self._logfile(spec.name), pidfile, env=self._service_env(spec))
        if spec.health_url is not None:
            url = spec.health_url(self.s)
            try:
                wait_for(
                    lambda: _http_ok(url) or proc.poll() is not None, 60, 0.2, what=f"{spec.name} health"
                )
            except StackError:
                terminate(proc.pid)
                raise StackError(
                    f"{spec.name} did not become healthy: {tail(self._logfile(spec.name))}"
                ) from None
        else:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise StackError(f"{spec.name} exited at start: {tail(self._logfile(spec.name))}")
        log(f"{spec.name}: started (pid {proc.pid}{', ' + spec.url(self.s) if spec.url else ''})")

    def down(self, log: Any = print) -> None:
        for spec in reversed(SERVICES):
            pidfile = self._pidfile(spec.name)
            pid = read_pid(pidfile)  # None for a stale file, whatever process now has its pid
            if pid is not None:
                terminate(pid)
                log(f"{spec.name}: stopped")
            elif pidfile.exists():
                log(f"{spec.name}: not running (stale pid file removed)")
            pidfile.unlink(missing_ok=True)
        if self.s.embedded_mqtt:
            br = self.broker()
            if br.running():
                br.stop()
                log("broker: stopped")
        if self.s.embedded_db:
            pg = self.pg()
            if pg.running():
                pg.stop()
                log("database: stopped")

    # --- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {
            "database": self._db_status().as_dict(),
            "broker": self._broker_status().as_dict(),
        }
        for spec in SERVICES:
            if spec.available():
                out[spec.name] = self._service_status(spec).as_dict()
        out.update(self._gateway_status(out["broker"]["state"] == "running"))
        return out

    def _gateway_status(self, broker_up: bool) -> dict[str, dict[str, Any]]:
        """Farm gateways reporting health on this broker, and one configured on this machine."""

        return status_components(self.mqtt_url("monitor") if broker_up else None)

    def _db_status(self) -> ComponentStatus:
        dsn = self.database_url()
        detail: dict[str, Any] = {"embedded": self.s.embedded_db}
        if self.s.embedded_db and not self.pg().running():
            return ComponentStatus("stopped", redact_dsn(dsn), detail)
        try:
            with psycopg.connect(dsn, connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT current_setting('server_version'),"
                    " (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')"
                ).fetchone()
                ver = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
                schema = None
                if ver and ver[0]:
                    r = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
                    schema = r[0] if r else None
                    detail["node_firmware"] = ota.firmware_summary(conn)  # versions and update outcomes
            assert row is not None
            detail |= {"postgres": row[0], "timescaledb": row[1], "schema_version": schema}
            return ComponentStatus("running", redact_dsn(dsn), detail)
        except psycopg.Error as exc:
            detail["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return ComponentStatus("error", redact_dsn(dsn), detail)

    def _broker_status(self) -> ComponentStatus:
        url = MqttUrl(self.mqtt_url("monitor"))
        detail: dict[str, Any] = {"embedded": self.s.embedded_mqtt}
        if self.s.embedded_mqtt and not self.broker().running():
            return ComponentStatus("stopped", url.public(), detail)
        ok, reason = probe(url)
        detail["auth"] = reason
        anon = MqttUrl(f"{'mqtts' if url.tls else 'mqtt'}://{url.host}:{url.port}")
        anon_ok, anon_reason = probe(anon)
        detail["anonymous"] = "accepted" if anon_ok else f"refused ({anon_reason})"
        if not ok:
            detail["error"] = reason
        return ComponentStatus("running" if ok else "error", url.public(), detail)

    def _service_status(self, spec: ServiceSpec) -> ComponentStatus:
        pid = read_pid(self._pidfile(spec.name))
        addr = spec.url(self.s) if spec.url else None
        if pid is None:
            return ComponentStatus("stopped", addr)
        detail: dict[str, Any] = {"pid": pid}
        if spec.health_url is not None and not _http_ok(spec.health_url(self.s)):
            return ComponentStatus("error", addr, detail | {"error": "health check failed"})
        return ComponentStatus("running", addr, detail)


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (OSError, ValueError):
        return False
