"""The pure evaluator: minimum duration, hysteresis, derived THI, anomaly/QC sources, silent nodes,
each reading once (watermarks), defaults and overrides, malformed rule files named precisely."""

from pathlib import Path

import numpy as np
import pytest

from alerts.config import RuleBook, default_rules
from alerts.engine import Evaluator, Event, Row, blocks_of, episode_key
from analytics.agro import thi_nrc1971
from analytics.anomaly.farm import ALERT_LEVEL
from kernel.rules import RulesError, parse_rules

T0 = 1_764_201_600.0
RULES = parse_rules(
    """
[[rules]]
name = "heat"
metric = "air_t"
above = 32
clear = 30
for_s = 120
[[rules]]
name = "thi"
metric = "thi"
above = 79
[[rules]]
name = "weird"
source = "anomaly"
metric = "do_mgl"
above = 0.9
clear = 0.5
[[rules]]
name = "broken"
source = "qc"
metric = "ph"
above = 3.5
[[rules]]
name = "silent"
kind = "silent"
intervals = 3
interval_s = 60
""",
    "toml",
)


def ev() -> Evaluator:
    return Evaluator(lambda farm: list(RULES.rules))


def row(metric: str, t: float, v: float, sid: int = 1, **kw: float | bool) -> Row:
    return Row(sid, 10, "f", "n-1", metric, t, v, **kw)  # type: ignore[arg-type]


def kinds(e: Evaluator, rows: list[Row]) -> list[str]:
    return [f"{x.kind}:{x.rule.name}@{x.t - T0:g}" for x in e.feed(e.split(rows)[0])]


def test_minimum_duration_and_hysteresis() -> None:
    e = ev()
    assert kinds(e, [row("air_t", T0 + i * 60, v) for i, v in enumerate([31, 33, 34])]) == []  # held 60 s
    out = e.feed(e.split([row("air_t", T0 + 180, 33)])[0])
    assert [(x.kind, x.since - T0, x.peak) for x in out] == [("open", 60, 34)]  # true start, worst value
    assert kinds(e, [row("air_t", T0 + 240, 31)]) == []  # inside the band
    assert kinds(e, [row("air_t", T0 + 300, 29.9)]) == ["close:heat@300"]


def test_a_dip_restarts_the_minimum_duration() -> None:
    e = ev()
    vals = [33, 33, 31, 33, 33, 33]
    assert kinds(e, [row("air_t", T0 + i * 60, v) for i, v in enumerate(vals)]) == ["open:heat@300"]


def test_readings_behind_the_watermark_never_flip_an_episode() -> None:
    e = ev()
    rows = [row("air_t", T0 + i * 60, v) for i, v in enumerate([33, 33, 33])]
    ahead, behind = e.split(rows)
    assert (len(ahead), behind) == (3, [])
    e.feed(ahead)
    late = [row("air_t", T0 + 30, 20), row("air_t", T0 + 90, 50)]  # committed late by another worker
    ahead, behind = e.split(late)
    assert ahead == [] and behind == late
    assert e.feed(behind) == [] and e.evaluated == 5  # evaluated, but an older reading changes nothing


def test_thi_is_derived_from_the_same_node_and_time() -> None:
    e = ev()
    out = kinds(e, [row("air_t", T0, 35, sid=1), row("air_rh", T0, 80, sid=2)])
    assert out == ["open:thi@0"]  # THI(35 °C, 80 %) ~ 91


def test_anomaly_and_qc_sources() -> None:
    e = ev()
    assert kinds(e, [row("do_mgl", T0, 5.0, sid=3, score=0.95)]) == ["open:weird@0"]
    assert kinds(e, [row("do_mgl", T0 + 60, 5.0, sid=3, score=0.2)]) == ["close:weird@60"]
    assert kinds(e, [row("ph", T0, 7.0, sid=4, qc=4)]) == ["open:broken@0"]
    assert kinds(e, [row("ph", T0 + 60, 7.0, sid=4, qc=1)]) == ["close:broken@60"]


def test_silent_node_on_a_clock() -> None:
    e = ev()
    e.feed(e.split([row("air_t", T0, 20)])[0])
    assert e.tick(T0 + 180) == []
    assert [x.kind for x in e.tick(T0 + 181)] == ["open"]
    assert e.tick(T0 + 300) == []
    e.feed(e.split([row("air_t", T0 + 310, 20)])[0])
    assert [x.kind for x in e.tick(T0 + 311)] == ["close"]


def test_imagery_pseudo_nodes_never_go_silent() -> None:
    e = ev()  # a block's satellite statistics arrive once a scene: no clock rule is theirs
    e.feed(e.split([row("air_t", T0, 20, sensor=False)])[0])
    assert e.tick(T0 + 10 * 86400) == []


def test_defaults_for_every_farm_kind_and_overrides_by_name(tmp_path: Path) -> None:
    for kind in ("orchard", "pig_farm", "tea_garden", "pond"):
        assert default_rules(kind).rules
    (tmp_path / "deploy.toml").write_text('[[rules]]\nname = "do-low"\nmetric = "do_mgl"\nbelow = 4.0\n')
    farms = tmp_path / "farms"
    farms.mkdir()
    (farms / "pond-7.toml").write_text(
        '[[rules]]\nname = "do-low"\nmetric = "do_mgl"\nbelow = 2.5\n'
        '[[rules]]\nname = "ph-range"\nmetric = "ph"\nbelow = 6\nenabled = false\n'
    )
    book = RuleBook.load(tmp_path / "deploy.toml", farms)
    by = {r.name: r for r in book.rules("pond-1", "pond")}
    assert by["do-low"].threshold == 4.0 and "ph-range" in by
    by7 = {r.name: r for r in book.rules("pond-7", "pond")}
    assert by7["do-low"].threshold == 2.5 and "ph-range" not in by7


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[[rules]]\nname = "a"\nmetric = "air_t"\nabove = 30\nfor_s = -1\n', "rules[0] ('a').for_s"),
        (
            '[[rules]]\nname = "a"\nsource = "anomaly"\nmetric = "air_t"\nabove = 2\n',
            "outside anomaly of air_t's range",
        ),
        ('[[rules]]\nname = "a"\nkind = "silent"\nabove = 3\n', "'silent' rule takes 'intervals'"),
        (
            '[[rules]]\nname = "a"\nmetric = "thi"\nsource = "qc"\nabove = 3\n',
            "rules[0] ('a').metric: derived index",
        ),
        ('[[rules]]\nname = "a"\nmetric = "air_t"\nabove = 3\nwhatever = 1\n', "rules[0] ('a').whatever"),
        (
            '[[rules]]\nname = "a"\nmetric = "disease_risk"\nabove = 1.5\n',
            "'model' must name a disease table",
        ),
        (
            '[[rules]]\nname = "a"\nmetric = "do_dawn"\nbelow = 3\nmodel = "citrus_fungal"\n',
            "'model' is only for",
        ),
        ('[[rules]]\nname = "a"\nmetric = "water_drop"\nbelow = -2\n', "outside water_drop's physical range"),
        ('[[rules]]\nname = "a"\nmetric = "ndvi_fall"\nbelow = -2\nlate_after_s = 0\n', "late_after_s"),
        (
            '[[rules]]\nname = "a"\nsource = "farm_anomaly"\nmetric = "air_t"\nabove = 1.5\n',
            "farm_anomaly of",
        ),
    ],
)
def test_malformed_rule_files_name_file_rule_and_key(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(RulesError) as exc:
        RuleBook.load(p)
    assert str(exc.value).startswith(f"{p}: ") and needle in str(exc.value), str(exc.value)


def test_day_scale_indices_of_many_series_in_one_step_equal_each_alone() -> None:
    """windowed() computes each index for all the step's series at once (NaN-padded, stacked); the
    transitions are those of each series evaluated alone."""
    book = RuleBook.load()
    kinds_of = {"t": "tea_garden", "g": "pig_farm", "p": "pond"}
    rng = np.random.default_rng(11)
    wins: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    rows: list[Row] = []
    for k in range(4):  # windows of different lengths and wet/dry or drinking patterns
        n = 300 + 150 * k
        t = T0 + np.arange(n) * 300.0
        wins[(k, "leaf_wet")] = (t, np.where(t > t[-1] - (11 + k) * 3600, 95.0, 20.0))  # wet 11-14 h
        wins[(k, "air_t")] = (t, 18.0 + k + rng.normal(0, 0.5, n))
        rows += [Row(k, k, "tea", f"t-{k}", "leaf_wet", float(x), 0.0) for x in t[-5:]]
        tw = T0 + np.arange(9 * 288) * 300.0
        wins[(100 + k, "water_l")] = (tw, np.where(tw > tw[-1] - (3 + k) * 3600, 2.0, 4.0))
        rows += [Row(100 + k, 100 + k, "gpig", f"w-{k}", "water_l", float(x), 0.0) for x in tw[-40:]]
    rows.sort(key=lambda r: (r.series_id, r.t))

    def fresh() -> Evaluator:
        return Evaluator(lambda farm: book.rules(farm, kinds_of[farm[0]]))

    def of(pk: int, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
        return wins.get((pk, metric))

    def key(e: object) -> tuple[object, ...]:
        return (e.kind, e.rule.name, e.node, e.t, round(e.value, 9))  # type: ignore[attr-defined]

    together = sorted(map(key, fresh().windowed(blocks_of(rows), of)))
    alone = sorted(
        key(e)
        for sid in sorted({r.series_id for r in rows})
        for e in fresh().windowed(blocks_of([r for r in rows if r.series_id == sid]), of)
    )
    assert together == alone
    assert {k[1] for k in together} == {"leaf-wet-disease", "water-drop"}  # both kinds alert


def test_shipped_farm_anomaly_rules_use_the_documented_alert_level() -> None:
    got = {(k, r.name): r.threshold for k in ("orchard", "pig_farm", "tea_garden", "pond")
           for r in default_rules(k).rules if r.source == "farm_anomaly"}  # fmt: skip
    assert got and set(got.values()) == {ALERT_LEVEL}, got


def test_series_at_a_time_equals_every_reading_through_every_rule() -> None:
    """feed() skips a series' readings until a rule first triggers; the transitions must equal
    those of stepping every reading through every rule in turn (the plain reference below)."""
    rules = parse_rules(
        """
[[rules]]
name = "hot"
metric = "air_t"
above = 30
clear = 28
for_s = 120
[[rules]]
name = "cold"
metric = "air_t"
below = 2
clear = 4
[[rules]]
name = "odd"
source = "anomaly"
metric = "air_t"
above = 0.8
clear = 0.4
[[rules]]
name = "flag"
source = "qc"
metric = "soil_vwc"
above = 3.5
""",
        "toml",
    ).rules
    rng = np.random.default_rng(3)
    rows: list[Row] = []
    for sid in range(1, 41):
        metric = "air_t" if sid % 2 else "soil_vwc"
        walk = 15 + np.cumsum(rng.normal(0, 2.5, 200))
        for k in range(200):
            score = None if k % 7 == 0 else float(rng.random())
            qc = int(rng.choice([1, 1, 1, 3, 4])) if metric == "soil_vwc" else None
            value = float("nan") if k % 53 == 0 else float(walk[k])
            rows.append(Row(sid, sid, "f", f"n-{sid}", metric, T0 + 60 * k, value, score=score, qc=qc))

    fast = Evaluator(lambda farm: list(rules))
    got = [(x.kind, x.rule.name, x.series_id, x.t) for x in fast.feed(rows)]

    ref = Evaluator(lambda farm: list(rules))
    events: list[Event] = []
    for r in rows:
        for rule in rules:
            if rule.metric != r.metric:
                continue
            v = {"value": r.value, "anomaly": r.score, "qc": None if r.qc is None else float(r.qc)}[
                rule.source
            ]
            if v is None or v != v:
                continue
            if not rule.triggered(v) and episode_key(rule, r.farm, r.node, r.metric) not in ref.episodes:
                continue
            ref._step(events, rule, r.farm, r.node, r.node_pk, r.series_id, r.metric, r.t, v)
    want = [(x.kind, x.rule.name, x.series_id, x.t) for x in events]
    assert len(want) > 50  # the data open and close plenty of episodes
    assert got == want
    assert fast.episodes == ref.episodes  # passing over readings leaves each episode as stepping did
    assert fast.dirty == ref.dirty


def test_thi_of_many_nodes_at_once_equals_each_time_in_turn() -> None:
    """THI is computed per node with numpy over the times both inputs have; the transitions are
    those of stepping each (node, time) pair in time order."""
    rules = parse_rules(
        '[[rules]]\nname = "thi"\nmetric = "thi"\nabove = 78\nclear = 76\nfor_s = 120\n', "toml"
    ).rules
    rng = np.random.default_rng(8)
    rows: list[Row] = []
    pairs: dict[tuple[int, float], dict[str, float]] = {}
    for node in range(6):
        temp = np.clip(26 + np.cumsum(rng.normal(0, 2.0, 150)), 10, 45)
        for sid, metric in ((2 * node, "air_t"), (2 * node + 1, "air_rh")):
            for k in range(150):
                if rng.random() < 0.1:  # each input misses some times
                    continue
                v = float(temp[k]) if metric == "air_t" else float(60 + 30 * rng.random())
                rows.append(Row(sid, node, "f", f"n-{node}", metric, T0 + 60 * k + node, v))
                pairs.setdefault((node, T0 + 60 * k + node), {})[metric] = v
    fast = Evaluator(lambda farm: list(rules))
    got = [(x.kind, x.node, x.t, x.value) for x in fast.feed(rows)]

    ref = Evaluator(lambda farm: list(rules))
    events: list[Event] = []
    for (node, t), got_in in sorted(pairs.items(), key=lambda kv: kv[0][1]):
        if len(got_in) == 2:
            thi = float(thi_nrc1971(got_in["air_t"], got_in["air_rh"]))
            ref._step(events, rules[0], "f", f"n-{node}", node, None, "thi", t, thi)
    want = [(x.kind, x.node, x.t, x.value) for x in events]
    assert len(want) >= 6
    assert got == want
    assert fast.episodes == ref.episodes


def test_block_split_equals_reading_by_reading() -> None:
    """split_blocks cuts each block at its series' watermark; the same as checking each reading."""
    rng = np.random.default_rng(4)
    e = Evaluator(lambda farm: [])
    wm: dict[int, float] = {}
    for _ in range(5):  # steps whose readings partly fall behind earlier steps' newest
        rows = [
            Row(sid, sid, "f", f"n-{sid}", "air_t", float(t), 1.0)
            for sid in range(1, 9)
            for t in np.unique(rng.integers(0, 400, 30))
        ]
        want_ahead, want_behind = [], []
        for r in rows:
            if r.series_id in wm and r.t <= wm[r.series_id]:
                want_behind.append((r.series_id, r.t))
            else:
                wm[r.series_id] = r.t
                want_ahead.append((r.series_id, r.t))
        ahead, behind = e.split_blocks(blocks_of(rows))
        assert [(b.series_id, t) for b in ahead for t in b.t.tolist()] == want_ahead
        assert [(b.series_id, t) for b in behind for t in b.t.tolist()] == want_behind
        assert e.watermarks == wm


@pytest.mark.parametrize("with_qc", [True, False])
def test_farm_score_without_farm_context_equals_the_farm_module(with_qc: bool) -> None:
    """The analyzer's shortcut for metrics no farm context explains gives what
    analytics.anomaly.farm.farm_scores gives with nothing explained."""
    from alerts.analysis import Analyzer
    from analytics.anomaly import farm

    rng = np.random.default_rng(5)
    n = 300
    scores: list[float | None] = [
        None if k % 11 == 0 else (float("nan") if k % 13 == 0 else float(rng.random())) for k in range(n)
    ]
    rows = [row("air_t", T0 + 60 * k, 20.0, score=s) for k, s in enumerate(scores)]  # type: ignore[arg-type]
    alarm = rng.random(n) < 0.1 if with_qc else None
    (b,) = blocks_of(rows)
    Analyzer()._decide(b, b.t, np.full(n, 20.0), alarm)
    want = farm.farm_scores(np.array([np.nan if s is None else s for s in scores]), alarm, np.zeros(n, bool))
    assert b.farm_score is not None and b.farm_score.tolist() == want.tolist()
