"""`agri node add` as a technician runs it: database rows, broker account live without a restart,
a config file the real firmware uses to report."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from agri.node import config as nodecfg
from agri.node.emulate import NodeProcess
from agri.stack.mosquitto import Broker
from agri.stack.mqtt_auth import MqttAuth
from agri.stack.proc import free_port
from kernel.mqtt import make_client
from tests.firmware.conftest import Delivery, Subscriber
from tests.fixtures.mqtt import BrokerHandle
from tests.fixtures.pg import make_tmp_root
from tests.fixtures.process import run_agri

pytestmark = [pytest.mark.firmware, pytest.mark.integration]


def _agri(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_agri(*args, env=env, timeout=60)


@pytest.fixture
def home_env(db_url: str) -> Iterator[tuple[dict[str, str], BrokerHandle]]:
    """An AGRI_HOME whose embedded broker runs (as after `agri up`) and an external test database."""
    home = make_tmp_root("agri-test-nodeadd-")
    broker = Broker(root=home / "mqtt", port=free_port(), autosave_interval_s=1)
    broker.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
    env |= {"AGRI_HOME": str(home), "AGRI_DATABASE_URL": db_url, "AGRI_MQTT_PORT": str(broker.port)}
    yield env, BrokerHandle(broker)
    broker.stop()
    shutil.rmtree(home, ignore_errors=True)


def test_node_add_registers_authorises_and_the_node_reports(
    home_env: tuple[dict[str, str], BrokerHandle],
    db_url: str,
    start_node: Callable[..., NodeProcess],
    subscribe: Callable[[BrokerHandle, list[str]], Subscriber],
) -> None:
    env, handle = home_env
    sub = subscribe(handle, ["agri/v1/#"])
    r = _agri(
        env,
        "node",
        "add",
        "--farm",
        "gy-orchard",
        "--node",
        "n-0001",
        "--farm-kind",
        "orchard",
        "--farm-name",
        "秭归脐橙园",
        "--name",
        "north slope",
        "--interval",
        "1",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    path = Path(env["AGRI_HOME"]) / "nodes" / "gy-orchard" / "n-0001.json"
    assert "active now (broker reloaded)" in r.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = nodecfg.load(path)
    assert [s.type for s in cfg.sensors] == ["sht3x", "soil", "ds18b20", "leaf", "rain", "battery"]
    assert cfg.broker.user == "gy-orchard.n-0001" and cfg.interval == 1

    with psycopg.connect(db_url) as conn:
        farm = conn.execute("SELECT name, kind FROM farms WHERE id = 'gy-orchard'").fetchone()
        node = conn.execute(
            "SELECT id, name, profile FROM nodes WHERE farm_id = 'gy-orchard' AND node_id = 'n-0001'"
        ).fetchone()
        assert farm == ("秭归脐橙园", "orchard")
        assert node is not None and node[1:] == ("north slope", "orchard")
        metrics = {m for (m,) in conn.execute("SELECT metric FROM series WHERE node_id = %s", (node[0],))}
    assert metrics == {"air_t", "air_rh", "soil_vwc", "soil_t", "leaf_wet", "rain_mm", "bat_v", "rssi_dbm"}

    acc = MqttAuth(Path(env["AGRI_HOME"]) / "mqtt").get("gy-orchard.n-0001")
    assert acc is not None and acc.acl_lines() == [
        "topic write agri/v1/gy-orchard/n-0001/up",
        "topic write agri/v1/gy-orchard/n-0001/status",
        "topic read agri/v1/gy-orchard/n-0001/config",
        "topic read agri/v1/gy-orchard/n-0001/ota/#",
    ]
    # The broker took the new account without a restart: the emulated node reports with it.
    n = start_node(cfg)
    sub.wait(lambda m: sum(t.endswith("/up") for t, _, _ in m) >= 2, 30)
    assert n.stop() == 0
    Delivery("gy-orchard", "n-0001", sub.ups()).assert_complete()
    sub.messages.clear()

    # Its credentials reach nothing else. The broker preserves order per client, so once the
    # allowed message arrived, the forbidden one sent before it would have too.
    admin = Subscriber(handle, ["agri/v1/none"])
    for n_id in ("n-0002", "n-0001"):
        admin.client.publish(f"agri/v1/gy-orchard/{n_id}/config", b"{}", 1, retain=True).wait_for_publish(5)
    probe = _Probe(f"mqtt://{cfg.broker.user}:{cfg.broker.password}@127.0.0.1:{handle.port}")
    try:
        probe.client.subscribe(
            [("agri/v1/gy-orchard/n-0002/config", 1), ("agri/v1/gy-orchard/n-0001/config", 1)]
        )
        probe.wait(lambda m: "agri/v1/gy-orchard/n-0001/config" in m)
        assert probe.topics == ["agri/v1/gy-orchard/n-0001/config"]
        probe.client.publish("agri/v1/gy-orchard/n-0002/up", b"forged", 1).wait_for_publish(5)
        probe.client.publish("agri/v1/gy-orchard/n-0001/up", b"own", 1).wait_for_publish(5)
        sub.wait(lambda m: any(p == b"own" for _, p, _ in m), 10)
        assert not any(p == b"forged" for _, p, _ in sub.messages)
    finally:
        probe.close()
        for n_id in ("n-0002", "n-0001"):
            admin.client.publish(f"agri/v1/gy-orchard/{n_id}/config", b"", 1, retain=True).wait_for_publish(5)
        admin.close()

    # Re-running keeps the password (the flashed node keeps working); --rotate replaces it.
    again = _agri(env, "node", "add", "--farm", "gy-orchard", "--node", "n-0001", "--interval", "1")
    assert again.returncode == 0, again.stderr
    assert nodecfg.load(path).broker.password == cfg.broker.password
    rot = _agri(env, "node", "add", "--farm", "gy-orchard", "--node", "n-0001", "--rotate")
    assert rot.returncode == 0 and "password rotated" in rot.stdout
    assert nodecfg.load(path).broker.password != cfg.broker.password


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--farm", "Bad_Farm", "--node", "n-1"], 2, "farm id 'Bad_Farm' must match"),
        (["--farm", "f-1", "--node", "gw"], 2, "node id 'gw' is reserved"),
        (["--farm", "f-new", "--node", "n-1"], 1, "farm 'f-new' is not registered: give --farm-kind"),
        (
            ["--farm", "f-1", "--node", "n-1", "--farm-kind", "pond", "--farm-name", "x", "--interval", "0"],
            2,
            "--interval 0 must be 1..86400",
        ),
        (["--farm", "f-1", "--node", "n-1", "--farm-kind", "zoo"], 2, "'zoo' is not one of"),
    ],
)
def test_node_add_refuses_bad_arguments(
    home_env: tuple[dict[str, str], BrokerHandle], args: list[str], code: int, message: str
) -> None:
    env, _ = home_env
    r = _agri(env, "node", "add", *args)
    assert r.returncode == code, r.stdout + r.stderr
    assert message in " ".join((r.stdout + r.stderr).split())


def test_node_add_refuses_a_farm_kind_mismatch(home_env: tuple[dict[str, str], BrokerHandle]) -> None:
    env, _ = home_env
    ok = _agri(
        env,
        "node",
        "add",
        "--farm",
        "barn-7",
        "--node",
        "n-1",
        "--farm-kind",
        "pig_farm",
        "--farm-name",
        "Barn 7",
    )
    assert ok.returncode == 0, ok.stderr
    cfg = nodecfg.load(Path(env["AGRI_HOME"]) / "nodes" / "barn-7" / "n-1.json")
    assert [s.type for s in cfg.sensors] == ["sht3x", "scd4x", "nh3", "flow"] and cfg.interval == 60
    bad = _agri(env, "node", "add", "--farm", "barn-7", "--node", "n-2", "--farm-kind", "pond")
    assert bad.returncode == 1 and "is a pig_farm, not pond" in bad.stderr


def test_node_add_with_external_broker_prints_what_to_configure(
    home_env: tuple[dict[str, str], BrokerHandle],
) -> None:
    env, _ = home_env
    env = env | {"AGRI_MQTT_URL": "mqtt://ops:secret@mqtt.example.org:1883"}
    r = _agri(
        env,
        "node",
        "add",
        "--farm",
        "pond-3",
        "--node",
        "n-1",
        "--farm-kind",
        "pond",
        "--farm-name",
        "Pond 3",
    )
    assert r.returncode == 0, r.stderr
    assert "external broker" in r.stdout and "topic write agri/v1/pond-3/n-1/up" in r.stdout
    cfg = nodecfg.load(Path(env["AGRI_HOME"]) / "nodes" / "pond-3" / "n-1.json")
    assert cfg.broker.host == "mqtt.example.org" and json.loads(cfg.to_json())["sensors"][0]["type"] == "do"


class _Probe:
    """A client logged in with the node's credentials, recording what it receives."""

    def __init__(self, url: str) -> None:
        import threading

        self.topics: list[str] = []
        self._cond = threading.Condition()
        self.client, kwargs = make_client(url, "acl-probe")
        connected = threading.Event()
        self.client.on_connect = lambda *_a: connected.set()

        def on_message(_c: object, _u: object, msg: object) -> None:
            with self._cond:
                self.topics.append(msg.topic)  # type: ignore[attr-defined]
                self._cond.notify_all()

        self.client.on_message = on_message
        self.client.connect(**kwargs)
        self.client.loop_start()
        assert connected.wait(10)

    def wait(self, pred: Callable[[list[str]], bool]) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: pred(self.topics), 10), self.topics

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.slow
def test_node_update_cli_updates_a_provisioned_node_and_records_it(
    home_env: tuple[dict[str, str], BrokerHandle],
    db_url: str,
    start_node: Callable[..., NodeProcess],
    tmp_path: Path,
) -> None:
    from tests.firmware.test_ota import Board, _firmware

    env, handle = home_env
    r = _agri(
        env,
        "node",
        "add",
        "--farm",
        "up-farm",
        "--node",
        "n-1",
        "--farm-kind",
        "pond",
        "--farm-name",
        "Up",
        "--interval",
        "1",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = nodecfg.load(Path(env["AGRI_HOME"]) / "nodes" / "up-farm" / "n-1.json")
    assert cfg.ota_key is not None and len(cfg.ota_key) == 64  # provisioned with its update key
    board = Board(start_node, cfg, tmp_path / "fs", [])
    try:
        board.wait_for(lambda: bool(board.events("connected")), 20)
        fw = _firmware(tmp_path, "0.2.0")
        admin = handle.account("admin")
        r = _agri(env, "node", "update", "--farm", "up-farm", "--version", "0.2.0", "--firmware-dir", str(fw),
                  "--timeout", "60", "--mqtt-url", admin)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ok up-farm/n-1" in r.stdout
        assert board.events("boot")[-1]["version"] == "0.2.0"
    finally:
        assert board.stop() == 0
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT firmware_version, ota_state FROM nodes WHERE farm_id = 'up-farm' AND node_id = 'n-1'"
        ).fetchone()
    assert row == ("0.2.0", "ok")
    r = _agri(env, "status", "--json")  # exit 1: the stack's services are not running here
    # One entry per (version, update state); the module's other tests leave nodes of unknown version.
    summary = json.loads(r.stdout)["database"]["node_firmware"].split(", ")
    assert "0.2.0 ok: 1" in summary, r.stdout + r.stderr
