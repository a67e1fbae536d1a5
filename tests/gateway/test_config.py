"""Gateway settings and rules file: every mistake is one line naming the variable / rule / field."""

from pathlib import Path

import pytest

from gateway.config import GatewayConfigError, load_gateway_settings
from gateway.rules import RulesError, load_rules, parse_rules
from tests.fixtures.process import run_agri

GOOD = {
    "AGRI_GATEWAY_FARM": "pig-farm-1",
    "AGRI_GATEWAY_ID": "gw-1",
    "AGRI_GATEWAY_LOCAL_URL": "mqtt://gw:pw@127.0.0.1:1883",
    "AGRI_GATEWAY_UPSTREAM_URL": "mqtts://gw:pw@central.example.org:8883",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for k in list(os.environ):
        if k.startswith("AGRI_GATEWAY_"):
            monkeypatch.delenv(k)
    for k, v in GOOD.items():
        monkeypatch.setenv(k, v)
    return monkeypatch


def test_good_settings_and_defaults(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("AGRI_GATEWAY_SPOOL_PATH", str(tmp_path / "s.db"))
    cfg = load_gateway_settings()
    assert (cfg.farm, cfg.id) == ("pig-farm-1", "gw-1")
    assert cfg.spool_sync == "full"
    assert cfg.client_id == "agri-gw-pig-farm-1-gw-1"
    assert cfg.spool_path == tmp_path / "s.db"


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("AGRI_GATEWAY_FARM", None, "AGRI_GATEWAY_FARM: required"),
        ("AGRI_GATEWAY_FARM", "Pig Farm", "AGRI_GATEWAY_FARM: farm id 'Pig Farm' must match"),
        ("AGRI_GATEWAY_ID", "GW_1", "AGRI_GATEWAY_ID: gateway id 'GW_1' must match"),
        ("AGRI_GATEWAY_LOCAL_URL", "http://x:1883", "AGRI_GATEWAY_LOCAL_URL: scheme must be mqtt://"),
        ("AGRI_GATEWAY_UPSTREAM_URL", "mqtt://host:99999", "AGRI_GATEWAY_UPSTREAM_URL: bad port"),
        ("AGRI_GATEWAY_SPOOL_MAX_BYTES", "100", "AGRI_GATEWAY_SPOOL_MAX_BYTES"),
        ("AGRI_GATEWAY_SPOOL_SYNC", "off", "AGRI_GATEWAY_SPOOL_SYNC"),
        ("AGRI_GATEWAY_BATCH_MAX_MESSAGES", "0", "AGRI_GATEWAY_BATCH_MAX_MESSAGES"),
        ("AGRI_GATEWAY_LINGER_S", "abc", "AGRI_GATEWAY_LINGER_S"),
        ("AGRI_GATEWAY_WEBHOOK_URL", "ftp://x/y", "AGRI_GATEWAY_WEBHOOK_URL: must be an http"),
        (
            "AGRI_GATEWAY_WEBHOOK_URL",
            "http://127.0.0.1:9/hook",
            "AGRI_GATEWAY_WEBHOOK_SECRET: a webhook needs",
        ),
        ("AGRI_GATEWAY_RULES_FILE", "/nonexistent/rules.toml", "AGRI_GATEWAY_RULES_FILE: no such file"),
        ("AGRI_GATEWAY_BACKOFF_MAX_S", "0.5", "AGRI_GATEWAY_BACKOFF_MAX_S must be >="),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(
    env: pytest.MonkeyPatch, var: str, value: str | None, needle: str
) -> None:
    if value is None:
        env.delenv(var)
    else:
        env.setenv(var, value)
    with pytest.raises(GatewayConfigError) as exc:
        load_gateway_settings()
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_url_passwords_are_not_echoed(env: pytest.MonkeyPatch) -> None:
    env.setenv("AGRI_GATEWAY_LOCAL_URL", "http://user:hunter2hunter2@x:1883")
    with pytest.raises(GatewayConfigError) as exc:
        load_gateway_settings()
    assert "hunter2" not in str(exc.value)


def test_rules_need_a_webhook(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    f = tmp_path / "r.toml"
    f.write_text('[[rules]]\nname="x"\nmetric="air_t"\nabove=32\n')
    env.setenv("AGRI_GATEWAY_RULES_FILE", str(f))
    with pytest.raises(GatewayConfigError, match="AGRI_GATEWAY_WEBHOOK_URL: local rules need a webhook"):
        load_gateway_settings()


EXAMPLE = """
max_reading_age_s = 600

[[rules]]
name = "barn-heat"
metric = "air_t"
above = 32.0
clear = 30.5
nodes = ["barn-1", "barn-2"]
cooldown_s = 900
message = "猪舍温度过高"

[[rules]]
name = "barn-ammonia"
metric = "nh3_ppm"
above = 25

[[rules]]
name = "pond-oxygen"
metric = "do_mgl"
below = 3.0
clear = 3.5
when = "always"
"""


def test_example_rules_parse(tmp_path: Path) -> None:
    f = tmp_path / "rules.toml"
    f.write_text(EXAMPLE, encoding="utf-8")
    rs = load_rules(f)
    assert [r.name for r in rs.rules] == ["barn-heat", "barn-ammonia", "pond-oxygen"]
    heat, nh3, do = rs.rules
    assert (heat.op, heat.threshold, heat.clear, heat.nodes) == ("above", 32.0, 30.5, ("barn-1", "barn-2"))
    assert (nh3.cooldown_s, nh3.when, nh3.severity) == (600.0, "uplink_down", "critical")
    assert (do.op, do.threshold, do.when) == ("below", 3.0, "always")
    j = tmp_path / "rules.json"
    j.write_text('{"rules": [{"name": "p", "metric": "do_mgl", "below": 3}]}')
    assert load_rules(j).rules[0].metric == "do_mgl"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            '[[rules]]\nname="a"\nmetric="air_temp"\nabove=1\n',
            "rules[0] ('a').metric: unknown metric 'air_temp'",
        ),
        ('[[rules]]\nname="a"\nmetric="air_t"\n', "rules[0] ('a'): set exactly one of 'above' or 'below'"),
        ('[[rules]]\nname="a"\nmetric="air_t"\nabove=1\nbelow=0\n', "set exactly one"),
        ('[[rules]]\nname="a"\nmetric="do_mgl"\nbelow=30\n', "outside do_mgl's physical range [0, 25] mg/L"),
        ('[[rules]]\nname="a"\nmetric="air_t"\nabove=32\nclear=33\n', "'clear' (33) must be <= 'above' (32)"),
        ('[[rules]]\nname="a"\nmetric="do_mgl"\nbelow=3\nclear=2\n', "'clear' (2) must be >= 'below' (3)"),
        (
            '[[rules]]\nname="a"\nmetric="air_t"\nabove=1\nnodes=["BAD"]\n',
            "rules[0] ('a').nodes[0]: node id 'BAD'",
        ),
        ('[[rules]]\nname="a"\nmetric="air_t"\nabove=1\ncooldown_s=-1\n', "rules[0] ('a').cooldown_s"),
        ('[[rules]]\nname="a"\nmetric="air_t"\nabove=1\nthreshold=3\n', "rules[0] ('a').threshold: Extra"),
        ('[[rules]]\nname="a b"\nmetric="air_t"\nabove=1\n', "rules[0] ('a b').name: must be 1-64"),
        (
            '[[rules]]\nname="a"\nmetric="air_t"\nabove=1\n[[rules]]\nname="a"\nmetric="ph"\nbelow=5\n',
            "used twice",
        ),
        ("rules = []\n", "rules: list at least one [[rules]] entry"),
        ("[[rules]\n", "not valid TOML"),
    ],
)
def test_bad_rules_are_one_line_naming_rule_and_field(text: str, needle: str) -> None:
    with pytest.raises(RulesError) as exc:
        parse_rules(text, "toml", "farm.toml")
    msg = str(exc.value)
    assert msg.startswith("farm.toml: ")
    assert needle in msg, msg
    assert "\n" not in msg


def test_rules_file_suffix(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("x")
    with pytest.raises(RulesError, match=r"must end in \.toml or \.json"):
        load_rules(f)


def test_cli_check_reports_config_error_and_exit_code(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
    env |= GOOD | {"AGRI_GATEWAY_ID": "Bad Id", "AGRI_HOME": str(tmp_path)}
    r = run_agri("gateway", "--check", env=env, timeout=60)
    assert r.returncode == 2
    assert "AGRI_GATEWAY_ID: gateway id 'Bad Id' must match" in r.stderr
    env["AGRI_GATEWAY_ID"] = "gw-1"
    env["AGRI_GATEWAY_SPOOL_PATH"] = str(tmp_path / "spool.db")
    r = run_agri("gateway", "--check", env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "gateway pig-farm-1/gw-1" in r.stdout and "pw" not in r.stdout


def test_cli_add_account_writes_a_gateway_account(tmp_path: Path) -> None:
    import os

    from agri.stack.mqtt_auth import MqttAuth, verify_password

    env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")} | {"AGRI_HOME": str(tmp_path)}
    r = run_agri("gateway", "--add-account", "pig-farm-1/gw-1", env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    password = r.stdout.split("password ")[1].split()[0]
    acc = MqttAuth(tmp_path / "mqtt").get("gw-pig-farm-1-gw-1")
    assert acc is not None and acc.role == "gateway" and (acc.farm, acc.node) == ("pig-farm-1", "gw-1")
    assert verify_password(password, acc.pw_hash)
    assert "topic write agri/v1/pig-farm-1/gw/gw-1/batch" in (tmp_path / "mqtt" / "acl").read_text()
    bad = run_agri("gateway", "--add-account", "pig-farm-1", env=env, timeout=60)
    assert bad.returncode == 2 and "--add-account FARM/GATEWAY: gateway id ''" in bad.stderr
