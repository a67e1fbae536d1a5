"""Each page through streamlit.testing.v1.AppTest against a real, seeded TimescaleDB."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from agri.bench.dashseed import Seeded
from tests.dashboard.conftest import APP


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def _text(at: AppTest) -> str:
    parts = [e.value for e in at.title] + [e.value for e in at.subheader] + [e.value for e in at.markdown]
    parts += [e.value for e in at.info] + [e.value for e in at.warning] + [e.value for e in at.error]
    parts += [e.value for e in at.caption] + [str(m.label) for m in at.metric]
    parts += [e.proto.label for e in at.get("page_link")]
    return "\n".join(str(p) for p in parts)


def test_overview_renders_in_chinese(dash_env: Seeded) -> None:
    at = _app().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "农场总览"
    text = _text(at)
    assert "龙驹镇柑橘园" in text and "小周镇生态渔场" in text
    assert "离线" in text  # the silent node's farm


def test_farm_page(dash_env: Seeded) -> None:
    at = _app()
    at.query_params["farm"] = "ganning-pigs"
    at.run()
    at.switch_page("screens/farm.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "甘宁镇生态猪场"
