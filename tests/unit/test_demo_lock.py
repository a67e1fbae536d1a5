"""One `agri demo` per AGRI_HOME: a second one refuses before starting or stopping anything (it
used to find the first demo's services "already running", play into them, and stop them on exit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agri.stack.demo import demo_lock
from agri.stack.proc import StackError
from tests.fixtures.process import run_agri


def test_the_lock_is_exclusive_names_its_holder_and_is_released(tmp_path: Path) -> None:
    held = demo_lock(tmp_path)
    with pytest.raises(StackError, match=rf"another `agri demo` \(pid {os.getpid()}\)"):
        demo_lock(tmp_path)
    held.close()
    demo_lock(tmp_path).close()  # free again once its holder let go (or died)


def test_a_second_demo_refuses_and_leaves_the_first_alone(tmp_path: Path) -> None:
    held = demo_lock(tmp_path)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
        env["AGRI_HOME"] = str(tmp_path)
        r = run_agri("demo", env=env, timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"another `agri demo` (pid {os.getpid()})" in r.stderr.replace("\n", " "), r.stderr
        assert "stopping" not in r.stdout  # nothing of the running demo's stack was touched
        assert not (tmp_path / "pg").exists() and not (tmp_path / "mqtt").exists()
    finally:
        held.close()
