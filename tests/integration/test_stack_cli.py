"""`agri up` / `status` / `down` as a user runs them, in a private AGRI_HOME on free ports."""

import json
import subprocess
from pathlib import Path

import pytest

from agri.stack.proc import boot_id, pid_alive, read_pid, spawn, terminate
from agri.stack.services import SERVICES
from tests.fixtures.pg import make_tmp_root
from tests.fixtures.process import run_agri
from tests.fixtures.stack import private_stack_env

pytestmark = pytest.mark.integration


def _agri(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_agri(*args, env=env, timeout=timeout)


@pytest.fixture
def stack_env() -> dict[str, str]:
    env = private_stack_env(make_tmp_root("agri-test-home-"))
    yield env
    _agri(env, "down")


def _stack_pids(home: str) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()[1:] if home in line]


def test_up_status_down_lifecycle(stack_env: dict[str, str]) -> None:
    up = _agri(stack_env, "up")
    assert up.returncode == 0, up.stderr
    again = _agri(stack_env, "up")  # twice is harmless
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout

    st = _agri(stack_env, "status", "--json")
    assert st.returncode == 0, st.stdout + st.stderr
    status = json.loads(st.stdout)
    db = status["database"]
    assert db["state"] == "running"
    assert db["timescaledb"] == "2.19.3"
    assert db["address"] == f"postgresql://agri@127.0.0.1:{stack_env['AGRI_PG_PORT']}/agri"
    assert db["schema_version"] >= 1
    br = status["broker"]
    assert br["state"] == "running"
    assert br["address"].endswith(f"127.0.0.1:{stack_env['AGRI_MQTT_PORT']}")
    assert br["anonymous"].startswith("refused")
    assert ":" not in br["address"].split("//")[1].split("@")[0]  # no password in the address
    for name, comp in status.items():
        assert comp["state"] == "running", (name, comp)
    assert status["api"]["address"] == f"http://127.0.0.1:{stack_env['AGRI_API_PORT']}"

    human = _agri(stack_env, "status")
    assert human.returncode == 0 and "2.19.3" in human.stdout

    pids = _stack_pids(stack_env["AGRI_HOME"])
    assert pids, "expected postgres and mosquitto processes under AGRI_HOME"
    down = _agri(stack_env, "down")
    assert down.returncode == 0, down.stderr
    assert not [p for p in pids if pid_alive(p)]
    assert _stack_pids(stack_env["AGRI_HOME"]) == []

    after = _agri(stack_env, "status", "--json")
    assert after.returncode == 1
    assert {c["state"] for c in json.loads(after.stdout).values()} == {"stopped"}


def test_port_in_use_is_a_clear_error(stack_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", int(stack_env["AGRI_MQTT_PORT"])))
        s.listen()
        res = _agri(stack_env, "up")
    assert res.returncode == 1
    assert f"port {stack_env['AGRI_MQTT_PORT']}" in res.stderr and "AGRI_MQTT_PORT" in res.stderr


def test_external_urls_start_nothing(stack_env: dict[str, str], db_url: str, mqtt_admin_url: str) -> None:
    env = stack_env | {"AGRI_DATABASE_URL": db_url, "AGRI_MQTT_URL": mqtt_admin_url}
    res = _agri(env, "up")
    assert res.returncode == 0, res.stderr
    assert "database:" not in res.stdout and "broker:" not in res.stdout
    assert _stack_pids(env["AGRI_HOME"]) == []
    st = json.loads(_agri(env, "status", "--json").stdout)
    assert st["database"]["state"] == "running" and st["database"]["embedded"] is False
    assert st["broker"]["state"] == "running" and st["broker"]["embedded"] is False


def test_bad_setting_is_one_line_exit_2(stack_env: dict[str, str]) -> None:
    res = _agri(stack_env | {"AGRI_PG_PORT": "lots"}, "status")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "AGRI_PG_PORT" in res.stderr


def test_down_and_status_leave_a_process_alone_that_reuses_a_stale_pid(stack_env: dict[str, str]) -> None:
    """After a reboot a pid in $AGRI_HOME/run can name an unrelated process: it is never signalled
    and never reported as a running service, whether the pid file is in the old plain format or
    records a different process (start time, command line)."""
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        run = Path(stack_env["AGRI_HOME"]) / "run"
        run.mkdir(parents=True)
        names = [spec.name for spec in SERVICES]
        plain, recorded = names[0], names[1:]
        (run / f"{plain}.pid").write_text(f"{bystander.pid}\n")  # pid only: cannot be verified
        for name in recorded:  # our format, same program even, but it started at another time
            rec = {"pid": bystander.pid, "boot": boot_id(), "start": 1, "argv": ["sleep", "300"]}
            (run / f"{name}.pid").write_text(json.dumps(rec))

        st = _agri(stack_env, "status", "--json")
        status = json.loads(st.stdout)
        for name in names:
            if name in status:
                assert status[name]["state"] == "stopped", (name, status[name])

        down = _agri(stack_env, "down")
        assert down.returncode == 0, down.stderr
        assert bystander.poll() is None  # not signalled
        assert "stale pid file removed" in down.stdout
        assert not any(run.glob("*.pid"))
    finally:
        bystander.kill()
        bystander.wait()


def test_pid_file_names_the_process_spawn_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "svc.pid"
    proc = spawn(["sleep", "300"], tmp_path / "svc.log", pidfile)
    try:
        assert read_pid(pidfile) == proc.pid
        rec = json.loads(pidfile.read_text())
        pidfile.write_text(json.dumps(rec | {"boot": "another-boot"}))
        assert read_pid(pidfile) is None  # the same pid and start time in another boot: not ours
        pidfile.write_text(json.dumps(rec))
    finally:
        assert terminate(proc.pid)
    assert read_pid(pidfile) is None  # gone: the file alone does not make it running
