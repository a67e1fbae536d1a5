# Config validation, backoff, MQTT packet bytes and the simulated sensors, on the unix port.
import json

from fakes import approx

from agrinode import config


def lines():
    out = []

    def log(event, level="info", **kw):
        kw["event"] = event
        kw["level"] = level
        out.append(kw)

    return out, log


def test_config_field_errors_use_defaults():
    out, log = lines()
    rep = config.Report(log, "node.json")
    cfg = config.check(
        {
            "farm": "f-1",
            "node": "n-1",
            "broker": {"host": "10.0.0.2", "port": 70000, "user": "f-1.n-1", "password": "pw"},
            "interval": 0,
            "batch": "x",
            "sleep": "forever",
            "spool": {"max_samples": 5},
            "sensors": [
                {"type": "sht3x", "addr": 0x44},
                {"type": "soil"},
                {"type": "ph", "pin": 35, "cal": {"v1": "a"}},
                {"type": "ds18b20", "pin": 4, "rom": "28ff4c6a01160400"},
                {"type": "ds18b20", "pin": 5, "metrics": ["water_t"]},
            ],
        },
        rep,
    )
    fields = [e["field"] for e in out]
    assert fields == [
        "broker.port",
        "interval",
        "batch",
        "sensors[1].pin",
        "sensors[2].cal",
        "sensors[3].rom",
        "sleep",
        "spool.max_samples",
    ], fields
    assert cfg["interval"] == 300 and cfg["batch"] == 24 and cfg["sleep"] == "auto"
    assert cfg["broker"]["port"] == 1883 and cfg["spool"]["max_samples"] == 2000
    assert [s["type"] for s in cfg["sensors"]] == ["sht3x", "ds18b20"]
    assert cfg["sensors"][1]["metrics"] == ["water_t"]
    assert all(e["level"] == "error" for e in out)


def test_config_missing_ids_mean_offline():
    out, log = lines()
    cfg = config.check({"farm": "F", "broker": {"host": "x"}}, config.Report(log, "node.json"))
    assert cfg["farm"] is None and cfg["node"] is None and cfg["broker"] is not None
    assert [e["using"] for e in out] == ["offline", "offline"]


def test_remote_config_overrides_and_rejects():
    out, log = lines()
    cfg = config.check(
        {"farm": "f", "node": "n", "broker": {"host": "h"}, "sensors": [{"type": "soil", "pin": 1}]},
        config.Report(log, "node.json"),
    )
    assert config.apply_remote(cfg, b'{"interval": 60, "cal": {"soil_vwc": {"dry": 2.5, "wet": 1.1}}}', log)
    assert cfg["interval"] == 60 and cfg["sensors"][0]["cal"] == {"dry": 2.5, "wet": 1.1}
    assert not config.apply_remote(cfg, b'{"interval": 6', log)  # truncated
    assert not config.apply_remote(cfg, b"[1]", log)
    assert config.apply_remote(cfg, b'{"batch": 10, "broker": {"host": "evil"}}', log)
    assert cfg["batch"] == 10 and cfg["broker"]["host"] == "h"  # credentials never change remotely
    assert not config.apply_remote(cfg, b'{"interval": 0}', log)  # any bad field: refused
    assert [e["field"] for e in out][-1] == "interval"


def test_backoff_is_capped_jittered_and_grows():
    from agrinode.net.uplink import backoff_delay as delay

    lo = [delay(n, 2, 60, lambda: 0.0) for n in range(1, 9)]
    hi = [delay(n, 2, 60, lambda: 1.0) for n in range(1, 9)]
    assert lo == [1, 2, 4, 8, 16, 30, 30, 30]
    assert hi == [2, 4, 8, 16, 32, 60, 60, 60]
    assert delay(1000, 2, 300, lambda: 0.5) == 225


class FakeSock:
    def __init__(self, incoming=b""):
        self.out = bytearray()
        self.inc = bytearray(incoming)

    def write(self, b):
        self.out += b
        return len(b)

    def readinto(self, mv):
        n = min(len(mv), len(self.inc))
        mv[:n] = self.inc[:n]
        self.inc = self.inc[n:]
        return n


def test_mqtt_publish_bytes_and_puback():
    from agrinode.net.mqtt import Client

    c = Client("f.n", "h", 1883, None, None, 60, 5)
    c.sock = FakeSock()
    pid = c.publish("a/b", b"x" * 200)
    # PUBLISH, QoS 1: 0x32, remaining length 207 as varint (0xcf 0x01), topic, packet id, payload.
    assert bytes(c.sock.out[:10]) == b"\x32\xcf\x01\x00\x03a/b\x00\x01" and pid == 1
    assert len(c.sock.out) == 3 + 207
    c.sock = FakeSock(b"\x40\x02\x00\x01" + b"\x30\x09\x00\x05a/cfg{}" + b"\x90\x03\x00\x02\x01")
    got = []
    c.on_message = lambda t, p: got.append((t, p))
    while c.sock.inc:
        c._packet()
    assert c.acked == {1} and got == [("a/cfg", b"{}")]


def _sim(faults):
    from agrinode.sampler import Sampler
    from agrisim import SimHal

    with open("sim.json", "w") as f:
        json.dump({"faults": faults}, f)
    cfg = config.check(
        {
            "farm": "f",
            "node": "n",
            "broker": {"host": "h"},
            "interval": 300,
            "sensors": [
                {"type": "sht3x"},
                {"type": "soil", "pin": 34},
                {"type": "ds18b20", "pin": 4},
                {"type": "scd4x"},
                {"type": "battery", "pin": 36},
            ],
        },
        config.Report(None, ""),
    )
    hal = SimHal(cfg, lambda *a, **k: None)
    out, log = lines()
    s = Sampler(hal, cfg["sensors"], log)
    recs = []
    for c in range(30):
        t = 1764201600 + 300 * c
        hal.before_sample(t, c)
        rec, bat = s.read(t)
        recs.append((json.loads(rec)["m"], bat))
    return recs, out


def test_sim_signals_are_diurnal_and_plausible():
    recs, out = _sim([])
    air = [m["air_t"] for m, _ in recs]
    assert max(air) - min(air) > 1.0 and all(5 < a < 30 for a in air)  # 2.5 h of a daily cycle
    assert all(20 <= m["air_rh"] <= 100 and 0 <= m["soil_vwc"] <= 100 for m, _ in recs)
    assert all(3.0 <= float(b) <= 4.2 for _, b in recs)
    assert "co2_ppm" not in recs[0][0] and "co2_ppm" in recs[1][0]  # SCD4x: first reading after start
    assert [e["event"] for e in out] == ["sensor_failed", "sensor_recovered"]


def test_sim_faults_stuck_spike_drift_dead():
    faults = [
        {"metric": "air_t", "kind": "stuck", "from": 5, "to": 15},
        {"metric": "soil_t", "kind": "spike", "from": 10, "to": 11, "size": 30},
        {"metric": "air_rh", "kind": "drift", "from": 10, "size": 1.0},
        {"metric": "soil_vwc", "kind": "dead", "from": 20},
    ]
    recs, out = _sim(faults)
    base, _ = _sim([])
    air = [m["air_t"] for m, _ in recs]
    assert len(set(air[5:15])) == 1 and air[15] != air[14]
    assert recs[10][0]["soil_t"] - base[10][0]["soil_t"] > 25
    approx(recs[19][0]["air_rh"] - base[19][0]["air_rh"], 10.0, 0.2)
    assert all("soil_vwc" not in m for m, _ in recs[20:]) and "soil_vwc" in recs[19][0]
    failed = [e for e in out if e["event"] == "sensor_failed" and e["metric"] == "soil_vwc"]
    assert len(failed) == 1 and "rail" in failed[0]["err"]  # logged once, not every cycle
