"""Headless Chromium (Debian's chromium + chromedriver) driven by selenium, for the browser tests."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def start(width: int = 1440, height: int = 1100) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--lang=zh-CN",
        "--enable-unsafe-swiftshader",  # WebGL (the map) in software
        "--use-angle=swiftshader",
        "--hide-scrollbars",
    ):
        opts.add_argument(arg)
    # An explicit driver path: selenium must not try to download one.
    return webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))


def wait(driver: Any, pred: Callable[[Any], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            got = pred(driver)
            if got:
                return got
        except Exception as exc:  # stale elements while Streamlit re-renders
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last!r})")


def settled(driver: webdriver.Chrome) -> bool:
    """Streamlit finished running the script: no running indicator, no skeletons."""
    running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
    skeleton = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSkeleton"]')
    return not running and not skeleton


def errors(driver: webdriver.Chrome) -> list[str]:
    """Text of every Streamlit exception box on the page (there must be none)."""
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')]


_HEIGHT_JS = """
let h = document.body.scrollHeight;
for (const id of ['stMain', 'stAppViewContainer', 'stMainBlockContainer']) {
  const m = document.querySelector(`[data-testid="${id}"]`);
  if (m) h = Math.max(h, m.scrollHeight);
}
return h;
"""


def full_screenshot(
    driver: webdriver.Chrome, path: Path, max_height: int = 4000, settle_s: float = 1.5
) -> None:
    """Screenshot of the whole scrollable app (the window is resized to the content's height)."""
    h = driver.execute_script(_HEIGHT_JS)
    w = driver.get_window_size()["width"]
    driver.set_window_size(w, min(int(h) + 40, max_height))
    # Charts redraw at the new size (plotly's resize is debounced, the map's WebGL canvas repaints).
    time.sleep(settle_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
