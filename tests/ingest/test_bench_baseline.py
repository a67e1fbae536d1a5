"""The ingest benchmark's yardstick against a real TimescaleDB: it copies exactly the stored rows
(all of them, or the first N), in batches, into a table it removes afterwards."""

import time

import psycopg
import pytest

from agri.bench.ingest import baseline
from kernel.decode import decode_message
from kernel.protocol import Limits, encode_up, up_topic
from store.writer import Writer
from tests.ingest.support import register

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def series_ids(db_url: str) -> list[int]:
    register(db_url, "farm-b", ["n-1", "n-2", "n-3"])
    t0 = float(int(time.time()) - 3600)
    batch = [
        decode_message(
            up_topic("farm-b", node),
            encode_up(
                node,
                seq,
                [(t0 + seq * 10 + k, {"air_t": 20.0 + k, "air_rh": 50.0}) for k in range(5)],
                boot=1,
            ),
            Limits(now=time.time()),
        )
        for node in ("n-1", "n-2", "n-3")
        for seq in range(20)
    ]
    w = Writer(db_url)
    try:
        assert w.write(batch).stored == 3 * 20 * 5 * 2
    finally:
        w.close()
    with psycopg.connect(db_url) as conn:
        return [int(r[0]) for r in conn.execute("SELECT id FROM series ORDER BY id")]


def test_copies_every_stored_row_in_batches_and_drops_its_table(db_url: str, series_ids: list[int]) -> None:
    run = baseline.copy_rate(db_url, series_ids, None, batch_rows=70)
    assert run.rows == 600
    assert run.first_rows == 600  # under a million: the whole run is "the first rows"
    assert run.rows_per_s > 0 and run.rows_per_cpu_s > 0 and run.first_rows_per_s > 0
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (baseline.TABLE,)).fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (600,)


def test_a_limit_copies_only_that_many_rows(db_url: str, series_ids: list[int]) -> None:
    assert baseline.copy_rate(db_url, series_ids, 250, batch_rows=100).rows == 250
    assert baseline.copy_rate(db_url, series_ids[:1], None, batch_rows=1000).rows == 100


def test_first_rows_stop_at_the_first_million(
    monkeypatch: pytest.MonkeyPatch, db_url: str, series_ids: list[int]
) -> None:
    monkeypatch.setattr(baseline, "FIRST_ROWS", 250)
    run = baseline.copy_rate(db_url, series_ids, None, batch_rows=100)
    assert (run.rows, run.first_rows) == (600, 200)
