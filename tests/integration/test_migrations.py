import secrets

import psycopg
import pytest

from agri.stack.postgres import PgCluster
from agri.stack.proc import free_port
from kernel.catalog import CATALOG
from store import migrate as migrate_mod
from store.migrate import MigrationError, current_version, load_migrations, migrate
from tests.fixtures.pg import make_tmp_root

pytestmark = pytest.mark.integration

TABLES = {
    "farms",
    "nodes",
    "metrics",
    "series",
    "readings",
    "seq_gaps",
    "alerts",
    "commissioners",
    "farm_commissioners",
    "webhook_deliveries",
    "rejects",
    "api_tokens",
    "schema_migrations",
}


def test_migrate_empty_database_then_rerun_is_a_noop(pg_cluster: PgCluster) -> None:
    name = "mig_empty_" + secrets.token_hex(3)
    pg_cluster.create_database(name)
    dsn = pg_cluster.dsn(name)
    assert current_version(dsn) is None

    applied = migrate(dsn)
    assert applied == [m.version for m in load_migrations()]
    assert migrate(dsn) == []  # second run: nothing to do
    assert current_version(dsn) == load_migrations()[-1].version

    with psycopg.connect(dsn) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        }
        assert tables >= TABLES
        hyper = conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables").fetchall()
        assert ("readings",) in hyper
        metrics = {r[0] for r in conn.execute("SELECT name FROM metrics").fetchall()}
        assert metrics == set(CATALOG)
        # The unique key keeps duplicates out.
        conn.execute("INSERT INTO farms (id, name, kind) VALUES ('f1', 'F1', 'orchard')")
        nid = conn.execute("INSERT INTO nodes (farm_id, node_id) VALUES ('f1', 'n1') RETURNING id").fetchone()
        sid = conn.execute(
            "INSERT INTO series (node_id, metric) VALUES (%s, 'air_t') RETURNING id", (nid[0],)
        ).fetchone()  # type: ignore[index]
        conn.execute("INSERT INTO readings VALUES (now(), %s, 1.0)", (sid[0],))  # type: ignore[index]
        with pytest.raises(psycopg.errors.UniqueViolation):
            t = conn.execute("SELECT time FROM readings").fetchone()[0]  # type: ignore[index]
            conn.execute("INSERT INTO readings VALUES (%s, %s, 2.0)", (t, sid[0]))  # type: ignore[index]


def test_edited_migration_is_refused(pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "mig_edit_" + secrets.token_hex(3)
    pg_cluster.create_database(name)
    dsn = pg_cluster.dsn(name)
    migrate(dsn)
    real = load_migrations()
    edited = [migrate_mod.Migration(m.version, m.name, m.sql + "\n-- edited\n") for m in real]
    monkeypatch.setattr(migrate_mod, "load_migrations", lambda: edited)
    with pytest.raises(MigrationError, match="was changed after it was applied"):
        migrate(dsn)


def test_failed_migration_rolls_back_completely(
    pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "mig_fail_" + secrets.token_hex(3)
    pg_cluster.create_database(name)
    dsn = pg_cluster.dsn(name)
    broken = [
        *load_migrations(),
        migrate_mod.Migration(9999, "broken", "CREATE TABLE zz (a int); SELECT 1/0;"),
    ]
    monkeypatch.setattr(migrate_mod, "load_migrations", lambda: broken)
    with pytest.raises(psycopg.errors.DivisionByZero):
        migrate(dsn)
    assert current_version(dsn) is None  # nothing half-applied
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('farms')").fetchone() == (None,)


def test_refuses_database_without_timescaledb() -> None:
    root = make_tmp_root("agri-test-plainpg-")
    plain = PgCluster(
        root=root / "pg",
        port=free_port(),
        password=secrets.token_urlsafe(12),
        fast_unsafe=True,
        preload_timescaledb=False,
    )
    plain.start()
    try:
        with pytest.raises(MigrationError) as exc:
            migrate(plain.dsn("postgres"))
        msg = str(exc.value)
        assert "TimescaleDB" in msg and "shared_preload_libraries" in msg and "install.sh" in msg
        with psycopg.connect(plain.dsn("postgres")) as conn:
            assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
    finally:
        plain.stop(mode="immediate")


def test_unreachable_database_gives_one_line_error() -> None:
    with pytest.raises(MigrationError, match="cannot connect to the database") as exc:
        migrate(f"postgresql://agri:x@127.0.0.1:{free_port()}/agri")
    assert "\n" not in str(exc.value)
