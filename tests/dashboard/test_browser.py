"""The running dashboard in headless Chromium: `agri dashboard` on a free port against a seeded
database; the overview, a farm page and an alert's deep link load with Chinese text, the map and
charts drawn, and no error element. Screenshots go to $AGRI_SCREENSHOTS_DIR (the README's come from
``AGRI_SCREENSHOTS_DIR=docs/screenshots pytest tests/dashboard/test_browser.py``), else a temp dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from agri.bench.dashseed import Seeded
from agri.stack.proc import free_port
from tests.dashboard import browser
from tests.dashboard.conftest import ROOT

# Each test drives a real browser against a real server: 10-35 s each on a busy 2-core machine.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not browser.available(), reason="Debian's chromium/chromedriver missing"),
]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(seeded: tuple[str, Seeded], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
    env |= {"AGRI_DATABASE_URL": seeded[0], "AGRI_HOME": str(tmp_path_factory.mktemp("home"))}
    env["AGRI_DASHBOARD_URL"] = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("dash") / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agri.cli.main", "dashboard", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        browser.wait(None, lambda _: _healthy(url) or proc.poll() is not None, 60, "dashboard health")  # type: ignore[arg-type]
        assert proc.poll() is None, Path(log.name).read_text()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    d = browser.start()
    yield d
    d.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("AGRI_SCREENSHOTS_DIR")
    return (ROOT / where) if where else tmp_path_factory.mktemp("screenshots")


def _load(driver: WebDriver, url: str, text: str, charts: int) -> str:
    driver.set_window_size(1440, 1100)
    driver.get(url)
    browser.wait(driver, lambda d: text in d.find_element(By.TAG_NAME, "body").text, 60, repr(text))
    browser.wait(driver, browser.settled, 60, "the script run to finish")
    browser.wait(
        driver,
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg, .js-plotly-plot canvas"))
            >= charts
        ),
        60,
        f"{charts} drawn chart(s)",
    )
    body: str = driver.find_element(By.TAG_NAME, "body").text
    assert browser.errors(driver) == []
    assert "Traceback" not in body
    return body


def test_overview_in_the_browser(server: str, driver: WebDriver, shots: Path) -> None:
    body = _load(driver, server + "/", "农场总览", charts=1)
    for text in ("各农场状态", "网关与上行链路", "今日数据完整率"):
        assert text in body
    # The farm table is a Streamlit data grid (drawn on a canvas, so its cells are not page text).
    browser.wait(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]'), 30, "farms"
    )
    browser.wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".maplibregl-canvas"), 30, "the map")
    browser.full_screenshot(driver, shots / "overview.png", settle_s=3.0)
    assert (shots / "overview.png").stat().st_size > 20_000


def test_farm_page_in_the_browser(server: str, driver: WebDriver, shots: Path) -> None:
    body = _load(driver, server + "/farm?farm=longju-orchard", "龙驹镇柑橘园", charts=6)
    for text in ("各节点最新数据", "时间序列", "农学指标", "节点健康", "土壤含水量 (%)", "积温 GDD"):
        assert text in body
    # the farm map: blocks over the latest NDVI image, and the scene's date under it
    browser.wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".maplibregl-canvas"), 30, "the farm map")
    browser.wait(
        driver, lambda d: "最新NDVI影像" in d.find_element(By.TAG_NAME, "body").text, 30, "scene date"
    )
    browser.full_screenshot(driver, shots / "farm.png", settle_s=3.0)


def test_alert_deep_link_and_english(
    server: str, driver: WebDriver, shots: Path, seeded: tuple[str, Seeded]
) -> None:
    alert_id = seeded[1].alerts.get("nh3_high")
    if alert_id is None:
        pytest.skip("no alerts seeded")
    body = _load(driver, f"{server}/alerts?alert={alert_id}", f"告警详情 #{alert_id}", charts=0)
    assert "氨气浓度 31.5 ppm" in body
    browser.full_screenshot(driver, shots / "alerts.png")
    body = _load(driver, server + "/farm?farm=xiaozhou-pond&lang=en", "Latest values per node", charts=3)
    assert "Dissolved oxygen" in body
