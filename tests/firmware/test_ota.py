"""Firmware updates over the air: the real firmware (unix port) against a real Mosquitto, the
platform side from agri.node.ota. A "board" restarts the firmware when it exits to reboot (code 3)
or after a crash (1) or a power cut (-9), as a board's reset would.

The updated version runs from the node's filesystem, i.e. with its code in the heap: these nodes
get a 128K heap (docs/firmware.md, memory)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from agri.node import ota
from agri.node.config import NodeConfig
from agri.node.emulate import NodeProcess
from agri.node.runtime import FIRMWARE_DIR
from kernel.mqtt import make_client
from tests.firmware.conftest import Delivery, Subscriber, node_config
from tests.fixtures.mqtt import BrokerHandle

pytestmark = [pytest.mark.firmware, pytest.mark.integration]

StartNode = Callable[..., NodeProcess]
MASTER = bytes(range(32))
HEAP = "128K"


def _firmware(tmp: Path, version: str, patch: Callable[[Path], None] | None = None) -> Path:
    fw = tmp / f"fw-{version}"
    shutil.copytree(FIRMWARE_DIR, fw, ignore=shutil.ignore_patterns("__pycache__"))
    init = fw / "agrinode" / "__init__.py"
    init.write_text(init.read_text().replace('VERSION = "0.1.0"', f'VERSION = "{version}"'))
    if patch:
        patch(fw)
    return fw


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ota.Release]:
    tmp = tmp_path_factory.mktemp("ota-fw")

    def crash_at_boot(fw: Path) -> None:
        app = fw / "agrinode" / "app.py"
        app.write_text(
            app.read_text().replace(
                "    node = None\n", '    node = None\n    raise RuntimeError("0.3.0 is broken")\n', 1
            )
        )

    return {
        "0.2.0": ota.release("0.2.0", _firmware(tmp, "0.2.0")),
        "0.3.0": ota.release("0.3.0", _firmware(tmp, "0.3.0", crash_at_boot)),
    }


class Platform:
    """The platform's MQTT client: publishes updates, follows the nodes' JSON status."""

    def __init__(self, broker: BrokerHandle, farm: str) -> None:
        self.watch = ota.StatusWatch()
        self.client, kwargs = make_client(broker.account("admin"), f"platform-{time.monotonic_ns()}")
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_a: c.subscribe(f"agri/v1/{farm}/+/status", 1)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.watch.on_message(m.topic, bytes(m.payload))
        self.client.connect(**kwargs)
        self.client.loop_start()
        assert subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def platform(mqtt_broker: BrokerHandle) -> Iterator[Callable[[str], Platform]]:
    made: list[Platform] = []

    def make(farm: str) -> Platform:
        made.append(Platform(mqtt_broker, farm))
        return made[-1]

    yield make
    for p in made:
        p.close()


class Board:
    """Runs the firmware and starts it again when it reboots, crashes or loses power."""

    def __init__(self, start: StartNode, cfg: NodeConfig, root: Path, sims: list[dict[str, Any]]) -> None:
        # sims: sim.json of the first runs in turn (e.g. a power cut injected in the second).
        self.start, self.cfg, self.root = start, cfg, root
        self.runs: list[NodeProcess] = []
        self.codes: list[int] = []
        self._stop = threading.Event()
        self._sims = sims
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            sim = self._sims[len(self.runs)] if len(self.runs) < len(self._sims) else {}
            n = self.start(self.cfg, sim=sim, root=self.root, heap=HEAP)
            self.runs.append(n)
            rc = n.proc.wait()
            n._reader.join(5)
            self.codes.append(rc)
            if self._stop.is_set() or rc not in (1, 3, -9):
                return

    def events(self, name: str) -> list[dict[str, str]]:
        return [e for n in list(self.runs) for e in n.events(name)]

    def wait_for(self, pred: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                tail = "\n".join(self.runs[-1].lines[-20:]) if self.runs else ""
                raise TimeoutError(
                    f"board: condition not met in {timeout}s, exits {self.codes}; log tail:\n{tail}"
                )
            time.sleep(0.1)

    def stop(self) -> int:
        self._stop.set()
        rc = self.runs[-1].stop() if self.runs else 0
        self._thread.join(10)
        return rc


def _cfg(broker: BrokerHandle, farm: str, node: str) -> NodeConfig:
    url = broker.node_account(farm, node)
    return node_config(url, farm, node, "tea_garden", ota_key=ota.node_key(MASTER, farm, node))


def _update(p: Platform, farm: str, node: str, rel: ota.Release, key: bytes = MASTER, **kw: Any) -> int:
    signed = ota.manifest(rel, farm, node, ota.node_key(key, farm, node), max_boots=kw.get("max_boots", 3))
    return ota.publish(p.client, farm, node, signed, kw.get("parts", ota.chunks(rel)))


class Rig(NamedTuple):
    """One node's test set-up: its up-topic subscriber, the platform client, the board."""

    sub: Subscriber
    p: Platform
    board: Board


@pytest.fixture
def rig(
    mqtt_broker: BrokerHandle,
    start_node: StartNode,
    platform: Callable[[str], Platform],
    subscribe: Callable[..., Subscriber],
    tmp_path: Path,
) -> Callable[..., Rig]:
    """make(farm, node, sims): a board running the firmware, connected to the broker."""

    def make(farm: str, node: str = "n-1", sims: list[dict[str, Any]] | None = None) -> Rig:
        sub = subscribe(mqtt_broker, [f"agri/v1/{farm}/{node}/up"])
        p = platform(farm)
        board = Board(start_node, _cfg(mqtt_broker, farm, node), tmp_path / "fs", sims or [])
        try:
            board.wait_for(lambda: bool(board.events("connected")), 20)
        except BaseException:
            board.stop()
            raise
        return Rig(sub, p, board)

    return make


def test_update_to_a_new_version(
    releases: dict[str, ota.Release],
    rig: Callable[..., Rig],
) -> None:
    farm, node = "ota-new", "n-1"
    sub, p, board = rig(farm, node)
    try:
        assert board.events("boot")[0]["config_errors"] == "0"  # ota_key: same schema on both sides
        rel = releases["0.2.0"]
        t0 = time.monotonic()
        n = _update(p, farm, node, rel)
        res = p.watch.wait([(farm, node)], "0.2.0", 60)
        took = time.monotonic() - t0
        assert res == {(farm, node): "ok"}, board.codes
        assert board.codes[:1] == [3]  # installed, rebooted into it
        installed = board.events("ota_installed")[0]
        assert installed["version"] == "0.2.0" and int(installed["bytes"]) == rel.size
        assert board.events("boot")[-1]["version"] == "0.2.0"
        # the node logs the confirmation before it says "ok" over MQTT, but the log comes through
        # the emulator's stdout pipe and a reader thread: the "ok" may get here first
        board.wait_for(lambda: bool(board.events("ota_confirmed")), 10)
        ota.clear(p.client, farm, node, n)
        k = len(sub.ups())
        sub.wait(lambda _m: len(sub.ups()) >= k + 2, 20)
    finally:
        assert board.stop() == 0
    d = Delivery(farm, node, sub.ups())
    d.assert_complete()
    assert {m.boot for m in d.decoded.values()} >= {1, 2}
    signed = ota.manifest(rel, farm, node, ota.node_key(MASTER, farm, node))
    print(
        f"update 0.1.0 -> 0.2.0: {len(rel.files)} files, {rel.size} B, {n} chunks, "
        f"{ota.air_bytes(farm, node, signed, ota.chunks(rel))} B of MQTT on air, "
        f"transfer {installed['ms']} ms on the node, confirmed {took:.1f} s after publishing"
    )


def test_a_broken_version_rolls_back_and_loses_nothing(
    releases: dict[str, ota.Release],
    rig: Callable[..., Rig],
) -> None:
    farm, node = "ota-broken", "n-1"
    sub, p, board = rig(farm, node)
    try:
        n = _update(p, farm, node, releases["0.3.0"], max_boots=2)
        res = p.watch.wait([(farm, node)], "0.3.0", 60)
        assert res == {(farm, node): "rolled back"}
        # installed (3), two trial boots that crash (1, 1), then back on 0.1.0
        assert board.codes[:3] == [3, 1, 1]
        assert board.events("boot")[-1]["version"] == "0.1.0"
        assert p.watch.latest[(farm, node)]["v"] == "0.1.0"
        # The retained manifest is seen again at each connect: it is not installed a second time.
        k = len(sub.ups())
        sub.wait(lambda _m: len(sub.ups()) >= k + 3, 20)
        assert len(board.events("ota_installed")) == 1
        ota.clear(p.client, farm, node, n)
    finally:
        assert board.stop() == 0
    d = Delivery(farm, node, sub.ups())
    d.assert_complete()  # no seq gap: nothing spooled was lost across the crashes and the rollback
    assert d.dropped() == 0


def test_wrong_signature_bad_manifest_and_short_chunk_are_refused(
    releases: dict[str, ota.Release],
    rig: Callable[..., Rig],
    tmp_path: Path,
) -> None:
    farm, node = "ota-refuse", "n-1"
    _, p, board = rig(farm, node)
    rel = releases["0.2.0"]
    parts = ota.chunks(rel)
    try:

        def state() -> str:
            return str(p.watch.latest.get((farm, node), {}).get("ota", ""))

        _update(p, farm, node, rel, key=bytes(32))  # signed with another key
        board.wait_for(lambda: state() == "refused: wrong signature", 20)
        other = ota.manifest(rel, farm, "n-2", ota.node_key(MASTER, farm, node))  # names another node
        ota.publish(p.client, farm, node, other, parts)
        board.wait_for(lambda: state() == "refused: bad manifest", 20)
        short = [*parts[:-1], parts[-1][:-1] or b"x"]  # the last chunk cut short
        if len(parts[-1]) == 1:
            short[-1] = parts[-1] + b"x"
        _update(p, farm, node, rel, parts=short)
        board.wait_for(lambda: state().startswith("failed 0.2.0: ValueError('chunk"), 20)
        assert board.codes == []  # never rebooted, never crashed
        assert board.events("boot")[-1]["version"] == "0.1.0"
        assert not (tmp_path / "fs" / "ota.json").exists()
        ota.clear(p.client, farm, node, len(parts))
    finally:
        assert board.stop() == 0


# (where, run of the board it happens in: 0 installs, 1 is the first boot of the new version)
KILL_POINTS = [
    ("after the 3rd chunk is written", 0, {"file": ".mpy", "step": 1, "n": 3}),
    ("before the directory rename", 0, {"file": "ota/0.2.0", "step": 0, "n": 1}),
    ("after the directory rename", 0, {"file": "ota/0.2.0", "step": 3, "n": 1}),
    ("switch: temp file created empty", 0, {"file": "ota.json", "step": 0, "n": 1}),
    ("switch: temp file written", 0, {"file": "ota.json", "step": 1, "n": 1}),
    ("switch: renamed into place", 0, {"file": "ota.json", "step": 3, "n": 1}),
    ("confirmation written, not renamed", 1, {"file": "ota.json", "step": 1, "n": 1}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("where", "run", "die"), KILL_POINTS, ids=[w for w, _r, _d in KILL_POINTS])
def test_power_cut_at_each_step_of_an_update(
    where: str,
    run: int,
    die: dict[str, Any],
    releases: dict[str, ota.Release],
    rig: Callable[..., Rig],
) -> None:
    farm, node = "ota-kill", f"n-{KILL_POINTS.index((where, run, die))}"
    sub, p, board = rig(farm, node, [{}] * run + [{"die": die}])
    try:
        n = _update(p, farm, node, releases["0.2.0"])
        # Killed once at that point; every start after it boots (old or new version) and the
        # update completes from the retained messages.
        res = p.watch.wait([(farm, node)], "0.2.0", 60)
        assert res == {(farm, node): "ok"}, board.codes
        assert -9 in board.codes and 1 not in board.codes, board.codes
        ota.clear(p.client, farm, node, n)
        k = len(sub.ups())
        sub.wait(lambda _m: len(sub.ups()) >= k + 2, 20)
    finally:
        assert board.stop() == 0
    d = Delivery(farm, node, sub.ups())
    d.assert_complete()
    assert d.dropped() == 0


@pytest.mark.slow
def test_staged_update_of_a_farm(
    mqtt_broker: BrokerHandle,
    start_node: StartNode,
    platform: Callable[[str], Platform],
    releases: dict[str, ota.Release],
    tmp_path: Path,
) -> None:
    farm = "ota-farm"
    nodes = [f"n-{i}" for i in range(4)]
    p = platform(farm)
    boards = [Board(start_node, _cfg(mqtt_broker, farm, n), tmp_path / n, []) for n in nodes]
    said: list[str] = []
    recorded: list[tuple[str, str, str | None]] = []
    try:
        for b in boards:
            b.wait_for(lambda b=b: bool(b.events("connected")), 30)
        out = ota.roll_out(
            p.client,
            p.watch,
            farm,
            nodes,
            releases["0.2.0"],
            MASTER,
            stage_spec="1,50%,100%",
            timeout=90,
            record=lambda *a: recorded.append(a),
            say=said.append,
        )
        assert [(o.node, o.result) for o in out] == [(n, "ok") for n in nodes]
        assert said == ["stage 1/3: n-0", "stage 2/3: n-1", "stage 3/3: n-2, n-3"]
        assert [r for r in recorded if r[1] == "ok"] == [(n, "ok", "0.2.0") for n in nodes]
        # The next release stops at its first stage: the canary rolls back, the rest is untouched.
        out = ota.roll_out(
            p.client,
            p.watch,
            farm,
            nodes,
            releases["0.3.0"],
            MASTER,
            stage_spec="1,100%",
            max_boots=1,
            timeout=90,
        )
        assert [o.result for o in out] == ["rolled back", "not started", "not started", "not started"]
        assert [p.watch.latest[(farm, n)]["v"] for n in nodes] == ["0.2.0"] * 4
    finally:
        for b in boards:
            assert b.stop() == 0
    print(f"staged update of {len(nodes)} nodes: {[round(o.seconds, 1) for o in out]} s per stage")


@pytest.mark.slow
def test_a_transfer_missing_a_chunk_gives_up_and_keeps_running(
    releases: dict[str, ota.Release],
    rig: Callable[..., Rig],
) -> None:
    farm, node = "ota-truncated", "n-1"
    sub, p, board = rig(farm, node)
    rel = releases["0.2.0"]
    parts = ota.chunks(rel)
    try:
        _update(p, farm, node, rel, parts=parts[:-1])  # the last chunk never comes
        board.wait_for(lambda: bool(board.events("ota_failed")), 40)
        assert board.events("ota_failed")[0]["reason"] == "transfer stalled with 1 chunks missing"
        k = len(sub.ups())
        sub.wait(lambda _m: len(sub.ups()) >= k + 2, 20)  # still reporting, on its version
        assert board.codes == [] and board.events("boot")[-1]["version"] == "0.1.0"
        ota.clear(p.client, farm, node, len(parts))
    finally:
        assert board.stop() == 0
    Delivery(farm, node, sub.ups()).assert_complete()
