"""The playground page in real headless Chromium: upload a crop, see LR, bicubic and SR with text."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.service.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("Debian chromium and chromium-driver are needed; scripts/system-deps.sh installs them as root")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1000,700"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def test_upload_shows_three_images_and_text(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    browser.find_element(By.ID, "pick").send_keys(str(ROOT / "tests/data/word.png"))
    deadline = time.time() + 60
    while time.time() < deadline:
        figures = browser.find_elements(By.CSS_SELECTOR, "#results .row figure")
        texts = [f.find_element(By.CSS_SELECTOR, ".text").text for f in figures]
        if len(figures) == 3 and all(t and t != "…" for t in texts):
            break
        assert not browser.find_elements(By.CSS_SELECTOR, ".err"), browser.find_element(By.CSS_SELECTOR, ".err").text
        time.sleep(0.3)
    else:
        pytest.fail(f"page did not show three results: {browser.page_source[:2000]}")
    images = browser.find_elements(By.CSS_SELECTOR, "#results .row img")
    assert len(images) == 3
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", im) for im in images)
    assert [im.get_attribute("alt") for im in images] == ["LR", "bicubic 2x", "SR"]
    shot = tmp_path / "playground.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
