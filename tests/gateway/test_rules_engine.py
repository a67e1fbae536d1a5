"""Local rule evaluation: thresholds, hysteresis, cooldown, uplink gating, stale readings."""

from gateway.rules import RuleEngine, parse_rules
from kernel.protocol import Reading

T0 = 1_764_201_600.0

RULES = parse_rules(
    """
max_reading_age_s = 600
[[rules]]
name = "barn-heat"
metric = "air_t"
above = 32
clear = 31
cooldown_s = 300
nodes = ["barn-1"]
[[rules]]
name = "pond-oxygen"
metric = "do_mgl"
below = 3
when = "always"
cooldown_s = 0
""",
    "toml",
)


def rd(node: str, metric: str, v: float, t: float) -> Reading:
    return Reading("f", node, metric, t, v)


def fired(engine: RuleEngine, node: str, metric: str, v: float, t: float, up: bool = False) -> list[str]:
    return [f"{n.rule.name}:{n.node}:{n.value:g}" for n in engine.observe([rd(node, metric, v, t)], up, t)]


def test_fires_once_per_episode_with_hysteresis_and_cooldown() -> None:
    e = RuleEngine(RULES)
    assert fired(e, "barn-1", "air_t", 31.9, T0) == []
    assert fired(e, "barn-1", "air_t", 32.5, T0 + 60) == ["barn-heat:barn-1:32.5"]
    assert fired(e, "barn-1", "air_t", 35.0, T0 + 120) == []  # same episode
    assert fired(e, "barn-1", "air_t", 31.5, T0 + 180) == []  # inside the hysteresis band: still active
    assert fired(e, "barn-1", "air_t", 33.0, T0 + 200) == []
    assert fired(e, "barn-1", "air_t", 31.0, T0 + 240) == []  # cleared
    assert fired(e, "barn-1", "air_t", 33.0, T0 + 300) == []  # new episode, but inside the cooldown
    assert [n.value for n in e.poll(False, T0 + 359)] == []
    assert [n.value for n in e.poll(False, T0 + 360)] == [33.0]  # notified once the cooldown ends
    assert e.poll(False, T0 + 400) == []


def test_other_nodes_and_metrics_are_ignored() -> None:
    e = RuleEngine(RULES)
    assert fired(e, "barn-2", "air_t", 40.0, T0) == []  # rule lists only barn-1
    assert fired(e, "barn-1", "air_rh", 99.0, T0) == []


def test_uplink_down_gating_and_late_notification() -> None:
    e = RuleEngine(RULES)
    assert fired(e, "barn-1", "air_t", 33.0, T0, up=True) == []  # central alerts while the uplink is up
    assert [n.rule.name for n in e.poll(False, T0 + 10)] == ["barn-heat"]  # uplink lost, still hot
    assert fired(e, "p-1", "do_mgl", 2.5, T0, up=True) == ["pond-oxygen:p-1:2.5"]  # when = "always"


def test_stale_and_out_of_order_readings_do_not_fire_or_flip_state() -> None:
    e = RuleEngine(RULES)
    assert e.observe([rd("barn-1", "air_t", 40.0, T0 - 601)], False, T0) == []  # backlog: too old
    assert fired(e, "barn-1", "air_t", 33.0, T0) == ["barn-heat:barn-1:33"]
    assert e.observe([rd("barn-1", "air_t", 20.0, T0 - 30)], False, T0 + 1) == []  # older than the last
    assert fired(e, "barn-1", "air_t", 34.0, T0 + 60) == []  # still the same episode
    assert e.poll(False, T0 + 60 + 601) == []  # no fresh reading: no alert on stale state


def test_notification_body() -> None:
    e = RuleEngine(RULES)
    (n,) = e.observe([rd("p-1", "do_mgl", 2.4, T0)], False, T0)
    body = n.body("pond-1", "gw-1", T0 + 1, "down")
    assert body["rule"] == "pond-oxygen" and body["op"] == "below" and body["threshold"] == 3.0
    assert body["unit"] == "mg/L" and body["value"] == 2.4 and body["uplink"] == "down"
    assert body["reading_time"] == T0 and body["fired_at"] == T0 + 1
