"""`agri flash` without a board: the dry-run plan and the errors a technician sees first."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.process import run_agri


def one_line(s: str) -> str:
    return " ".join(s.split())


def test_dry_run_prints_every_file_with_size_hash_and_target(firmware: Path, node_config: Path) -> None:
    r = run_agri("flash", "--config", str(node_config), "--firmware", str(firmware), "--dry-run")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for target in (
        "/boot.py",
        "/main.py",
        "/node.json",
        "/lib/agrinode/__init__.mpy",
        "/lib/agrinode/sub/calc.mpy",
        "/lib/agrinode/sub/__init__.mpy",
    ):
        assert target in out
    main = (firmware / "main.py").read_bytes()
    assert hashlib.sha256(main).hexdigest()[:16] in out
    assert str(len(main)) in out
    assert "6 files" in out and "node orchard-1/n-0001 → broker 192.0.2.10:1883" in one_line(out)
    assert "dry run: nothing was sent" in out


def test_dry_run_json_matches_the_sources(firmware: Path, node_config: Path) -> None:
    r = run_agri("flash", "--config", str(node_config), "--firmware", str(firmware), "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    by_target = {f["target"]: f for f in plan["files"]}
    assert set(by_target) == {
        "/boot.py",
        "/main.py",
        "/node.json",
        "/lib/agrinode/__init__.mpy",
        "/lib/agrinode/sub/__init__.mpy",
        "/lib/agrinode/sub/calc.mpy",
    }
    assert by_target["/node.json"]["sha256"] == hashlib.sha256(node_config.read_bytes()).hexdigest()
    assert by_target["/boot.py"]["size"] == (firmware / "boot.py").stat().st_size
    mpy = by_target["/lib/agrinode/sub/calc.mpy"]
    assert mpy["source"].endswith("agrinode/sub/calc.py")
    assert plan["total_bytes"] == sum(f["size"] for f in plan["files"])
    assert "mpy v6.3" in plan["compiler"]


def test_missing_port_is_reported_with_a_hint(firmware: Path, node_config: Path) -> None:
    r = run_agri(
        "flash",
        "--port",
        "/dev/ttyUSB-agri-missing",
        "--config",
        str(node_config),
        "--firmware",
        str(firmware),
    )
    assert r.returncode == 1
    err = one_line(r.stderr)
    assert "flash failed at step connect, file /dev/ttyUSB-agri-missing: serial port does not exist" in err
    assert "hint: is the board plugged in" in err


def test_not_a_serial_device(firmware: Path, node_config: Path, tmp_path: Path) -> None:
    r = run_agri("flash", "--port", "/dev/null", "--config", str(node_config), "--firmware", str(firmware))
    assert r.returncode == 1
    assert "flash failed at step connect, file /dev/null" in one_line(r.stderr)


@pytest.fixture
def silent_pty() -> Iterator[str]:
    """A serial port with nothing answering on the other side (a board without MicroPython)."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def test_port_without_a_repl(firmware: Path, node_config: Path, silent_pty: str) -> None:
    r = run_agri(
        "flash",
        "--port",
        silent_pty,
        "--config",
        str(node_config),
        "--firmware",
        str(firmware),
        "--connect-timeout",
        "2",
    )
    assert r.returncode == 1
    err = one_line(r.stderr)
    assert f"flash failed at step connect, file {silent_pty}: no MicroPython REPL answered within 2 s" in err
    assert "the port sent nothing" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
        ("[1, 2]", "must be a JSON object, got list"),
        ('{"farm": "Orchard 1", "node": "n-1", "broker": {"host": "b"}}', "field farm: farm id 'Orchard 1'"),
        ('{"farm": "f", "broker": {"host": "b"}}', "field node is missing"),
        ('{"farm": "f", "node": "n", "broker": {"port": 1883}}', "field broker.host must be a host name"),
        ('{"farm": "f", "node": "n", "broker": {"host": "b", "port": 0}}', "field broker.port must be"),
        ('{"v": 2, "farm": "f", "node": "n"}', "field v: unsupported config version 2"),
        # Everything else: the platform's node config schema (agri.node.config).
        ('{"farm": "f", "node": "n", "broker": {"host": "b"}, "interval": 0}', "interval: Input should be"),
        (
            '{"farm": "f", "node": "n", "broker": {"host": "b"}, "sensors": [{"type": "lidar"}]}',
            "sensors.0.type",
        ),
    ],
)
def test_bad_config_is_refused_before_anything_happens(
    firmware: Path, tmp_path: Path, content: str, message: str
) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text(content)
    r = run_agri(
        "flash", "--port", "/dev/ttyUSB-agri-missing", "--config", str(cfg), "--firmware", str(firmware)
    )
    assert r.returncode == 1
    assert f"flash failed at step config, file {cfg}: {message}" in one_line(r.stderr)


def test_build_error_names_the_source(firmware: Path, node_config: Path) -> None:
    (firmware / "agrinode" / "broken.py").write_text("def f(:\n    pass\n")
    r = run_agri("flash", "--config", str(node_config), "--firmware", str(firmware), "--dry-run")
    assert r.returncode == 1
    err = one_line(r.stderr)
    assert f"flash failed at step build, file {firmware / 'agrinode' / 'broken.py'}: mpy-cross:" in err
    assert "SyntaxError" in err


def test_port_is_required_without_dry_run(firmware: Path, node_config: Path) -> None:
    r = run_agri("flash", "--config", str(node_config), "--firmware", str(firmware))
    assert r.returncode == 2
    assert "--port is required" in r.stderr
