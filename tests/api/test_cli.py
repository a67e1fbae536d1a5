"""`agri token create|list|revoke` and `agri node import` against a real database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from agri.cli.main import app
from agri.node import config as nodecfg
from agri.stack.mqtt_auth import MqttAuth, verify_password
from api.queries import tokens
from store.registry import upsert_farm

pytestmark = pytest.mark.integration


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k in [k for k in __import__("os").environ if k.startswith("AGRI_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("AGRI_DATABASE_URL", db_url)
    monkeypatch.setenv("AGRI_HOME", str(tmp_path / "home"))
    return {}


def test_token_create_list_revoke(env: dict[str, str], db: psycopg.Connection[Any]) -> None:
    upsert_farm(db, "farm-t", "T", "orchard")
    r = CliRunner().invoke(app, ["token", "create", "li-wei", "-s", "read", "-s", "operate", "-f", "farm-t"])
    assert r.exit_code == 0, r.output
    secret = r.output.strip().splitlines()[-1]
    who = tokens.verify(db, secret)
    assert who is not None and who.farms == frozenset({"farm-t"}) and who.may("operate")
    (row,) = db.execute("SELECT token_hash FROM api_tokens WHERE name = 'li-wei'").fetchall()
    assert secret not in row[0] and row[0] == tokens.hash_token(secret)
    r = CliRunner().invoke(app, ["token", "create", "li-wei", "-s", "read"])
    assert r.exit_code == 2 and "exists already" in r.output
    r = CliRunner().invoke(app, ["token", "create", "x", "-s", "root"])
    assert r.exit_code == 2 and "unknown scope" in r.output
    listed = json.loads(CliRunner().invoke(app, ["token", "list", "--json"]).output)
    assert [t["name"] for t in listed] == ["li-wei"] and listed[0]["farms"] == ["farm-t"]
    assert CliRunner().invoke(app, ["token", "revoke", "li-wei"]).exit_code == 0
    assert tokens.verify(db, secret) is None
    assert CliRunner().invoke(app, ["token", "list", "--json"]).output.strip() == "[]"


def test_node_import_dry_run_then_apply(
    env: dict[str, str], tmp_path: Path, db: psycopg.Connection[Any]
) -> None:
    upsert_farm(db, "farm-i", "I", "tea_garden")
    sheet = tmp_path / "nodes.csv"
    sheet.write_text(
        "farm,node,sensors,interval\nfarm-i,t-1,air_t;air_rh;leaf_wet,600\nfarm-i,t-2,soil_vwc,\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("farm,node,sensors\nfarm-i,t-3,air_t\nfarm-i,T 4,air_t\n")
    r = CliRunner().invoke(app, ["node", "import", str(bad), "--apply"])
    assert r.exit_code == 1 and "bad.csv, line 3, column node" in r.output
    assert db.execute("SELECT count(*) FROM nodes WHERE farm_id = 'farm-i'").fetchone() == (0,)
    r = CliRunner().invoke(app, ["node", "import", str(sheet)])
    assert r.exit_code == 0 and "2 node(s) OK (dry run" in r.output
    out = tmp_path / "configs"
    r = CliRunner().invoke(
        app, ["node", "import", str(sheet), "--apply", "--out", str(out), "--broker-host", "10.0.0.5"]
    )
    assert r.exit_code == 0, r.output
    cfg = nodecfg.load(out / "farm-i" / "t-1.json")
    assert (cfg.farm, cfg.node, cfg.interval, cfg.broker.host) == ("farm-i", "t-1", 600, "10.0.0.5")
    assert (out / "farm-i" / "t-1.json").stat().st_mode & 0o777 == 0o600
    acc = MqttAuth(tmp_path / "home" / "mqtt").get("farm-i.t-1")  # the embedded broker's account
    assert acc is not None and verify_password(cfg.broker.password or "", acc.pw_hash)
    assert db.execute("SELECT count(*) FROM node_credentials WHERE applied_at IS NULL").fetchone() == (0,)
