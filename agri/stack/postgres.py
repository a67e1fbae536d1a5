"""A private PostgreSQL 15 cluster with TimescaleDB preloaded, under a directory we own.

Used by ``agri up`` (under ``$AGRI_HOME/pg``) and by the test fixtures (under a temp dir, on a
free port). PostgreSQL refuses to run as root, so when we are root the server runs as the
``postgres`` system user and the directory tree is handed to it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from agri.stack.proc import StackError, port_free, tail

PG_MAJOR = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
TSDB_CONTROL = Path(f"/usr/share/postgresql/{PG_MAJOR}/extension/timescaledb.control")
INSTALL_HINT = "run deploy/install.sh (it installs PostgreSQL 15 and builds TimescaleDB)"


def timescaledb_installed() -> bool:
    return TSDB_CONTROL.exists()


def memory_bytes() -> int:
    """Physical memory of this machine (0 if it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def memory_conf(total: int | None = None) -> dict[str, str]:
    """Memory settings sized from the machine, as timescaledb-tune does: shared_buffers a quarter
    of RAM (at least 128 MB, at most 4 GB: the embedded cluster shares the machine with the
    broker, the services and the dashboard) and effective_cache_size three quarters.

    The index of the newest chunk is where every insert lands; once it outgrows shared_buffers
    inserts re-read and evict index pages. At 10,000 series sampled each minute a day's chunk
    index alone is about 400 MB (docs/benchmarks.md).
    """
    mb = (memory_bytes() if total is None else total) // (1024 * 1024)
    if mb <= 0:
        return {"shared_buffers": "'256MB'"}
    shared = min(max(mb // 4, 128), 4096)
    return {"shared_buffers": f"'{shared}MB'", "effective_cache_size": f"'{max(mb * 3 // 4, shared)}MB'"}


def _run_as() -> str | None:
    """OS user the server must run as (None: the current user)."""
    return "postgres" if os.geteuid() == 0 else None


@dataclass
class PgCluster:
    root: Path
    port: int
    password: str
    user: str = "agri"
    dbname: str = "agri"
    host: str = "127.0.0.1"
    # Tests trade durability for speed; the embedded production stack never sets this.
    fast_unsafe: bool = False
    preload_timescaledb: bool = True
    extra_conf: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        return self.root / "run"

    @property
    def logfile(self) -> Path:
        return self.root / "log" / "postgresql.log"

    def dsn(self, dbname: str | None = None, with_password: bool = True) -> str:
        auth = f"{self.user}:{quote(self.password, safe='')}" if with_password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname or self.dbname}"

    # --- lifecycle ----------------------------------------------------------------------------

    def _pg(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        runas = _run_as()
        exe = PG_BIN / args[0]
        if not exe.exists():
            raise StackError(f"{exe} not found: {INSTALL_HINT}")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        try:
            res = subprocess.run(
                [str(exe), *args[1:]],
                user=runas,
                group=runas,
                cwd=self.root,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise StackError(f"{args[0]} timed out after {timeout:.0f}s (log: {self.logfile})") from None
        if check and res.returncode != 0:
            why = (res.stderr or res.stdout).strip().splitlines()
            raise StackError(f"{args[0]} failed: {why[-1] if why else 'exit ' + str(res.returncode)}")
        return res

    def _prepare_dirs(self) -> None:
        for d in (self.root, self.sockdir, self.logfile.parent):
            d.mkdir(parents=True, exist_ok=True)
        runas = _run_as()
        if runas is None:
            return
        pw = pwd.getpwnam(runas)
        for d in (self.root, self.sockdir, self.logfile.parent):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o755)
        probe = subprocess.run(["test", "-w", str(self.root)], user=runas, check=False)
        if probe.returncode != 0:
            blocked = next(
                (p for p in [*reversed(self.root.parents)] if not os.stat(p).st_mode & 0o001), self.root
            )
            raise StackError(
                f"the {runas!r} user cannot reach {self.root} ({blocked} is not traversable); "
                f"set AGRI_HOME to a directory it can reach, e.g. /var/lib/agri"
            )

    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb with password auth everywhere; idempotent."""
        if self.initialized():
            return
        if self.preload_timescaledb and not timescaledb_installed():
            raise StackError(f"TimescaleDB is not installed ({TSDB_CONTROL} missing): {INSTALL_HINT}")
        self._prepare_dirs()
        runas = _run_as()
        fd, pwfile = tempfile.mkstemp(prefix="agri-pw-", dir=self.root)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.password + "\n")
            if runas:
                pw = pwd.getpwnam(runas)
                os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            self._pg(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            )
        finally:
            with contextlib.suppress(OSError):
                os.unlink(pwfile)
        self.write_conf()

    def write_conf(self) -> None:
        conf = {
            "port": str(self.port),
            "listen_addresses": f"'{self.host}'",
            "unix_socket_directories": f"'{self.sockdir}'",
            "max_connections": "100",
            # tests keep a small footprint (many clusters, small data); a real cluster is sized
            **({"shared_buffers": "'256MB'"} if self.fast_unsafe else memory_conf()),
            "work_mem": "'16MB'",
            "maintenance_work_mem": "'128MB'",
            "wal_compression": "on",
            "max_wal_size": "'2GB'",
            "checkpoint_timeout": "'15min'",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %d '",
            "timezone": "'UTC'",
        }
        if self.preload_timescaledb:
            conf["shared_preload_libraries"] = "'timescaledb'"
            conf["timescaledb.telemetry_level"] = "off"
            conf["timescaledb.max_background_workers"] = "4"
            conf["max_worker_processes"] = "16"
        if self.fast_unsafe:
            conf |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        conf |= self.extra_conf
        text = "# Generated by agri; edit AGRI_* settings instead.\n" + "".join(
            f"{k} = {v}\n" for k, v in conf.items()
        )
        agri_conf = self.data / "agri.conf"
        agri_conf.write_text(text)
        main = self.data / "postgresql.conf"
        body = main.read_text()
        if "include_if_exists = 'agri.conf'" not in body:
            main.write_text(body + "\ninclude_if_exists = 'agri.conf'\n")
        runas = _run_as()
        if runas:
            pw = pwd.getpwnam(runas)
            os.chown(agri_conf, pw.pw_uid, pw.pw_gid)

    def running(self) -> bool:
        if not self.initialized():
            return False
        return self._pg("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def start(self, timeout: float = 60) -> None:
        if not self.initialized():
            self.init()
        if self.running():
            return
        if not port_free(self.host, self.port):
            raise StackError(f"port {self.port} on {self.host} is in use; set AGRI_PG_PORT to a free port")
        self.write_conf()
        res = self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
            check=False,
            timeout=timeout + 10,
        )
        if res.returncode != 0:
            raise StackError(f"PostgreSQL did not start: {tail(self.logfile, 3) or res.stderr.strip()}")

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        if not self.running():
            return
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-m",
            mode,
            "-w",
            "-t",
            str(int(timeout)),
            "stop",
            timeout=timeout + 10,
        )

    def create_database(self, name: str | None = None, template: str | None = None) -> bool:
        """Create a database owned by our user if it does not exist; True if created."""
        import psycopg
        from psycopg import sql

        name = name or self.dbname
        with psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            q = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                q = q + sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(q)
        return True

    def kill9(self) -> None:
        """Crash the postmaster (fault tests)."""
        pidfile = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(pidfile.read_text().split()[0]), 9)
