"""The platform's own firmware (firmware/) flashed onto the emulated board, and the wait for the
node's first message on a real broker."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agri.flash.build import default_firmware_dir
from kernel.protocol import encode_up, up_topic
from tests.emulator.qemu import QemuBoard
from tests.emulator.test_flash_emulator import raw_repl
from tests.fixtures.mqtt import BrokerHandle
from tests.fixtures.process import run_agri

pytestmark = pytest.mark.emulator

# What the emulated board lacks (no network, no buses): imports that may fail for that reason.
MISSING_ON_EMULATOR = ("socket", "network", "onewire", "ssl", "I2C", "ADC", "WDT", "RTC", "deepsleep")

_IMPORT_ALL = """\
import os
bad = []
def walk(d, pkg):
    for e in os.ilistdir(d):
        name, kind = e[0], e[1]
        if kind & 0x4000:
            walk(d + '/' + name, pkg + '.' + name)
        elif name.endswith('.mpy'):
            mod = pkg if name == '__init__.mpy' else pkg + '.' + name[:-4]
            try:
                __import__(mod)
                print('ok', mod)
            except Exception as exc:
                print('fail', mod, type(exc).__name__, exc)
walk('%s/agrinode', 'agrinode')
"""


def _flash_argv(board: QemuBoard, fw: Path, cfg: Path, *extra: str) -> list[str]:
    return ["flash", "--port", board.pty, "--config", str(cfg), "--firmware", str(fw), *extra]


@pytest.mark.parametrize(("placement", "root"), [("romfs", "/rom/lib"), ("/lib (heap)", "/lib")])
def test_platform_firmware_flashes_boots_and_its_modules_load(
    board: QemuBoard, node_config: Path, placement: str, root: str
) -> None:
    fw = default_firmware_dir()
    extra = ["--reset", "soft", "--boot-output", "5"] + ([] if placement == "romfs" else ["--no-romfs"])
    r = run_agri(*_flash_argv(board, fw, node_config, *extra))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verified" in r.stdout
    assert f"code: {placement}" in r.stdout  # it says where the code went
    # main.py started the node from the flashed code with the flashed /node.json.
    assert "node=n-0001" in r.stdout, r.stdout
    with raw_repl(board) as t:
        lines = t.exec(_IMPORT_ALL % root).decode().splitlines()
    ok = [ln.split()[1] for ln in lines if ln.startswith("ok ")]
    failed = [ln for ln in lines if ln.startswith("fail ")]
    n_mpy = len(list((fw / "agrinode").rglob("*.py")))
    assert len(ok) + len(failed) == n_mpy
    assert "agrinode.config" in ok and "agrinode.spool" in ok
    # Every .mpy from mpy-cross 1.29 loads on MicroPython 1.25 (no "incompatible .mpy"); a module
    # may only fail because the emulated board has no network stack or hardware buses.
    for line in failed:
        assert " ImportError " in line and any(m in line for m in MISSING_ON_EMULATOR), line


def _start_flash(board: QemuBoard, fw: Path, cfg: Path, *extra: str) -> subprocess.Popen[str]:
    argv = _flash_argv(board, fw, cfg, "--reset", "soft", "--wait-first-message", *extra)
    return subprocess.Popen(
        [sys.executable, "-m", "agri.cli.main", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.integration
def test_wait_first_message_reports_the_nodes_message(
    board: QemuBoard, firmware: Path, node_config: Path, mqtt_broker: BrokerHandle
) -> None:
    """The emulated board has no network, so the test publishes the node's first message with
    the node's own broker account once agri flash has subscribed (what the node's uplink does)."""
    monitor = mqtt_broker.account("monitor")
    node_url = mqtt_broker.node_account("orchard-1", "n-0001")
    proc = _start_flash(board, firmware, node_config, "--mqtt-url", monitor, "--timeout", "30")
    assert proc.stdout is not None
    lines: list[str] = []
    subscribed = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "subscribed to agri/v1/orchard-1/n-0001/up" in line:
                subscribed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert subscribed.wait(60), "".join(lines)
        from kernel.mqtt import make_client

        client, kwargs = make_client(node_url, "n-0001")
        client.connect(**kwargs)
        client.loop_start()
        now = time.time()
        payload = encode_up("n-0001", 1, [(now, {"air_t": 21.5, "air_rh": 65.2})], boot=1)
        client.publish(up_topic("orchard-1", "n-0001"), payload, qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        assert proc.wait(60) == 0, "".join(lines) + (proc.stderr.read() if proc.stderr else "")
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert not err
    out = " ".join("".join(lines).split())
    assert "first message from orchard-1/n-0001 after" in out
    assert "seq 1, boot 1, 2 readings" in out


@pytest.mark.integration
def test_wait_first_message_times_out_with_a_clear_error(
    board: QemuBoard, firmware: Path, node_config: Path, mqtt_broker: BrokerHandle
) -> None:
    monitor = mqtt_broker.account("monitor")
    proc = _start_flash(board, firmware, node_config, "--mqtt-url", monitor, "--timeout", "2")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "verified" in out  # the flash itself succeeded
    assert "flash failed at step wait: no message on agri/v1/orchard-1/n-0001/up within 2 s" in " ".join(
        err.split()
    )


def test_wait_first_message_with_a_wrong_password_fails_before_the_reset(
    board: QemuBoard, firmware: Path, node_config: Path
) -> None:
    r = run_agri(
        *_flash_argv(
            board, firmware, node_config, "--wait-first-message", "--mqtt-url", "mqtt://nobody:x@127.0.0.1:9"
        ),
        "--timeout",
        "5",
    )
    assert r.returncode == 1
    assert "flash failed at step wait: cannot reach the broker at mqtt://nobody@127.0.0.1:9" in " ".join(
        r.stderr.split()
    )
