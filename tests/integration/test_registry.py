import psycopg
import pytest

from store.registry import ensure_series, get_node, node_map, series_map, upsert_farm, upsert_node

pytestmark = pytest.mark.integration


def test_register_farm_node_and_series(db: psycopg.Connection[tuple[object, ...]]) -> None:
    farm = upsert_farm(db, "citrus-1", "秭归脐橙园", "orchard", lat=30.82, lon=110.98, elevation_m=300)
    assert farm.kind == "orchard" and farm.tz == "Asia/Shanghai"
    node = upsert_node(db, "citrus-1", "n-01", profile="orchard-soil", metrics=["air_t", "soil_vwc"])
    again = upsert_node(db, "citrus-1", "n-01")  # re-registering keeps what was there
    assert again.pk == node.pk and again.profile == "orchard-soil"
    assert get_node(db, "citrus-1", "n-01") == again
    sid = ensure_series(db, node.pk, "air_t")
    assert ensure_series(db, node.pk, "air_t") == sid
    assert series_map(db)[("citrus-1", "n-01", "soil_vwc")] != sid
    assert node_map(db)[("citrus-1", "n-01")] == node.pk


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: upsert_farm(c, "Bad Farm", "x", "orchard"), "farm id"),
        (lambda c: upsert_farm(c, "f-2", "x", "vineyard"), "farm kind 'vineyard' must be one of"),
        (lambda c: upsert_farm(c, "f-2", "x", "pond", lat=91), "latitude"),
        (lambda c: upsert_node(c, "no-such-farm", "n-1"), "farm 'no-such-farm' is not registered"),
        (lambda c: upsert_node(c, "citrus-1", "gw"), "reserved"),
    ],
)
def test_bad_registrations_are_refused(
    db: psycopg.Connection[tuple[object, ...]], call, message: str
) -> None:  # type: ignore[no-untyped-def]
    upsert_farm(db, "citrus-1", "F", "orchard")
    with pytest.raises(ValueError, match=message):
        call(db)


def test_unknown_metric_series_refused(db: psycopg.Connection[tuple[object, ...]]) -> None:
    upsert_farm(db, "pond-1", "鱼塘", "pond")
    node = upsert_node(db, "pond-1", "n-1")
    with pytest.raises(ValueError, match="not in the catalog"):
        ensure_series(db, node.pk, "moonlight_lux")
