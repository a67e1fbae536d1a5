"""`agri commissioner` and `agri alerts` commands: input refused with the key named, nothing half-applied,
secrets never printed back; ack / resolve / list; rule files checked at start."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agri.cli.main import app
from agri.stack.services import SERVICES
from tests.alerts.support import q
from tests.ingest.support import register

pytestmark = pytest.mark.integration
SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def run(db_url: str, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), env={"AGRI_DATABASE_URL": db_url})
    return res.exit_code, res.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--channel", "sms", "--url", "http://x/h"], "channel: 'sms' must be one of"),
        (["--channel", "generic", "--url", "ftp://x/h", "--secret", SECRET], "url: must be an http(s) URL"),
        (["--channel", "generic", "--url", "http://x/h"], "secret: a generic webhook needs"),
        (
            ["--channel", "generic", "--url", "http://x/h", "--secret", "abc"],
            "secret: must start with 'whsec_'",
        ),
        (["--channel", "wecom", "--url", "http://x/send"], "url: a WeCom robot URL carries its key"),
        (["--channel", "dingtalk", "--url", "http://x/robot/send"], "url: a DingTalk robot URL carries"),
        (
            ["--channel", "feishu", "--url", "http://x/h", "--language", "fr"],
            "language: 'fr' must be zh or en",
        ),
    ],
)
def test_bad_commissioner_input_is_refused_naming_the_key(db_url: str, args: list[str], needle: str) -> None:
    before = q(db_url, "SELECT count(*) FROM commissioners")
    code, out = run(db_url, "commissioner", "add", "bad-one", *args)
    assert code == 2 and needle in out, out
    assert q(db_url, "SELECT count(*) FROM commissioners") == before


def test_assign_is_all_or_nothing_and_list_never_shows_secrets(db_url: str) -> None:
    register(db_url, "cli-f1", ["n-1"])
    register(db_url, "cli-f2", ["n-1"])
    code, out = run(
        db_url, "commissioner", "add", "li", "--channel", "generic", "--url", "http://h/x", "--secret", SECRET
    )
    assert code == 0, out
    ding = "https://oapi.dingtalk.com/robot/send?access_token=tok123"
    code, out = run(
        db_url, "commissioner", "add", "wang", "--channel", "dingtalk", "--url", ding, "--secret", "SECsecret"
    )
    assert code == 0, out
    code, out = run(db_url, "commissioner", "assign", "li", "cli-f1", "no-such-farm")
    assert code == 2 and "farms: unknown farm(s) no-such-farm" in out
    assert q(db_url, "SELECT count(*) FROM farm_commissioners") == [(0,)]  # cli-f1 not assigned either
    code, out = run(db_url, "commissioner", "assign", "li", "cli-f1", "--min-severity", "loud")
    assert code == 2 and "min_severity: 'loud'" in out
    code, out = run(db_url, "commissioner", "assign", "li", "cli-f1", "cli-f2", "--min-severity", "critical")
    assert code == 0, out
    code, out = run(db_url, "commissioner", "assign", "wang", "cli-f1", "--order", "1")
    assert code == 0, out
    code, out = run(db_url, "commissioner", "list")
    assert code == 0 and "cli-f1:0:critical" in out and "cli-f1:1:warning" in out
    assert "whsec_" not in out and "SECsecret" not in out and "tok123" not in out and "secret set" in out


def test_ack_resolve_and_list(db_url: str) -> None:
    register(db_url, "cli-a", ["n-1"])
    ins = (
        "INSERT INTO alerts (farm_id, rule, severity, message, started_at, subject)"
        " VALUES ('cli-a', 'heat', 'critical', '', now(), 'n-1/air_t') RETURNING id"
    )
    (aid,) = q(db_url, ins)[0]
    code, out = run(db_url, "alerts", "list")
    assert code == 0 and f"{aid}" in out and "open" in out
    assert run(db_url, "alerts", "ack", str(aid), "--by", "张三")[0] == 0
    code, out = run(db_url, "alerts", "ack", str(aid), "--by", "李四")
    assert code == 0 and "was not open" in out
    assert run(db_url, "alerts", "resolve", str(aid), "--by", "张三")[0] == 0
    code, out = run(db_url, "alerts", "ack", "999999", "--by", "x")
    assert code == 1 and "no alert 999999" in out
    rows = q(db_url, "SELECT kind, by_whom FROM alert_events WHERE alert_id = %s ORDER BY id", aid)
    assert rows == [("acknowledged", "张三"), ("resolved", "张三")]
    assert q(db_url, "SELECT status, acked_by, resolved_by FROM alerts WHERE id = %s", aid) == [
        ("resolved", "张三", "张三")
    ]


def test_rule_files_are_checked_at_start(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('[[rules]]\nname = "heat"\nmetric = "air_t"\nabove = 99\n')
    code, out = run(db_url, "alerts", "--rules", str(bad), "--check")
    assert code == 2 and f"{bad}: rules[0] ('heat'): threshold 99 is outside" in out.replace("\n", "")
    good = tmp_path / "ok.toml"
    good.write_text('[[rules]]\nname = "heat"\nmetric = "air_t"\nabove = 30\n')
    assert run(db_url, "alerts", "--rules", str(good), "--check") == (0, "rules ok\n")


def test_agri_up_starts_the_alert_service_next_to_ingest() -> None:
    names = [s.name for s in SERVICES]
    assert names.index("alerts") == names.index("ingest") + 1
    spec = next(s for s in SERVICES if s.name == "alerts")
    assert spec.available() and spec.mqtt_role == "monitor"
