"""`agri ingest` wiring: how `agri up` starts it, and refused option combinations."""

import subprocess
import sys

import pytest

from agri.stack.services import SERVICES
from ingest.service import IngestOptions
from kernel.settings import load_settings


def ingest_argv(**env: object) -> list[str]:
    spec = next(s for s in SERVICES if s.name == "ingest")
    return spec.argv(load_settings(**env))  # type: ignore[arg-type]


def test_embedded_broker_gets_one_exclusive_worker_external_one_shares() -> None:
    assert ingest_argv(mqtt_url=None)[-2:] == ["ingest", "--exclusive"]
    assert ingest_argv(mqtt_url="mqtt://u:p@broker:1883")[-1] == "ingest"


def test_exclusive_with_several_workers_is_refused() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "agri.cli.main", "ingest", "--exclusive", "--workers", "2"],
        capture_output=True,
        text=True,
        env={
            "AGRI_DATABASE_URL": "postgresql://a:b@127.0.0.1:1/x",
            "AGRI_MQTT_URL": "mqtt://u:p@127.0.0.1:1",
            "PATH": "/usr/bin:/bin",
        },
        timeout=60,
    )
    assert res.returncode == 2 and "--exclusive is for one worker" in res.stderr


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"group": "a/b"}, "group"),
        ({"receive_maximum": 10, "max_batch_messages": 11}, "max_batch_messages"),
        ({"linger_s": -1}, "linger_s"),
    ],
)
def test_bad_options_are_refused(kw: dict[str, object], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        IngestOptions(database_url="postgresql://x@h/d", mqtt_url="mqtt://h", client_id="c", **kw)  # type: ignore[arg-type]
