"""The playground page: its example crops (made by scripts/make_examples.py, served without the API key),
and the page itself in real headless Chromium: examples on first load, uploads, tiling, errors, API key."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.service.conftest import ROOT, ServerProcess

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
EXAMPLES = ROOT / "service" / "http" / "static" / "examples"
SCREENSHOT = ROOT / "docs" / "playground.png"
"""README's picture of the page; the browser test rewrites it when TEXTSR_UPDATE_SCREENSHOT=1 (else it writes to tmp)."""


def examples_doc() -> dict:
    return json.loads((EXAMPLES / "examples.json").read_text())


def load_script():
    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "scripts" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the example crops ----------------------------------------------------------------------------------
def test_committed_examples_are_what_the_script_makes(tmp_path):
    """The shipped PNGs and examples.json are exactly what scripts/make_examples.py writes (they cannot drift)."""
    pytest.importorskip("wordfreq")
    pytest.importorskip("fontTools")
    import cv2

    script = load_script()
    committed = examples_doc()
    if script.font_fingerprint() != committed["fonts"]:
        pytest.skip(f"this machine's font set differs from the one the examples were made with ({committed['fonts']}); "
                    "scripts/system-deps.sh installs it")
    made = script.make_examples(tmp_path)
    assert made == committed
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in EXAMPLES.iterdir())
    for entry in made["examples"]:
        ours, theirs = cv2.imread(str(EXAMPLES / entry["file"])), cv2.imread(str(tmp_path / entry["file"]))
        assert ours.shape == (entry["height"], entry["width"], 3)
        assert np.array_equal(ours, theirs), entry["file"]


def test_examples_are_small_labelled_and_include_a_long_line():
    doc = examples_doc()
    assert "no third-party images" in doc["license"] and "make_examples.py" in doc["source"]
    assert 4 <= len(doc["examples"]) <= 6
    for e in doc["examples"]:
        assert e["label"] and e["split"].startswith("test/") and e["indices"]
        assert (EXAMPLES / e["file"]).stat().st_size < 10_000
    assert any(e["width"] / e["height"] > 6 for e in doc["examples"]), "a long line shows mode=tile"


def test_page_and_examples_need_no_key_but_the_api_does(start_server):
    s = start_server(TEXTSR_API_KEY="s3cret", TEXTSR_RECOGNITION="false")
    assert httpx.get(s.url + "/").status_code == 200
    r = httpx.get(s.url + "/static/examples/examples.json")
    assert r.status_code == 200 and r.json() == examples_doc()
    png = httpx.get(s.url + "/static/examples/" + examples_doc()["examples"][0]["file"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    for sneaky in ("/static/%2e%2e/app.py", "/static/%2e%2e/%2e%2e/README.md", "/static/%2e%2e/%2e%2e/v1/models"):
        r = httpx.get(s.url + sneaky)  # the key exemption covers /static/ only: no way out of the folder
        assert r.status_code == 404 and "import" not in r.text and "models" not in r.text, (sneaky, r.status_code)
    assert httpx.get(s.url + "/v1/models").status_code == 401
    metrics = httpx.get(s.url + "/metrics", headers={"X-API-Key": "s3cret"}).text
    assert 'textsr_requests_total{endpoint="/static",status="200"} 2.0' in metrics
    assert httpx.get(s.url + "/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200


def test_responses_say_how_long_the_server_took(server):
    """Server-Timing (the playground shows it per request): the server's own milliseconds."""
    r = httpx.post(server.url + "/v1/upscale", files={"file": (ROOT / "tests/data/word.png").read_bytes()})
    assert r.status_code == 200
    name, dur = r.headers["server-timing"].split(";")
    assert name == "app" and 0 < float(dur.removeprefix("dur=")) < 60_000


# -- the page in a real browser ---------------------------------------------------------------------------
@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("Debian chromium and chromium-driver are needed; scripts/system-deps.sh installs them as root")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1200,900"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


ROWS_JS = """
return [...document.querySelectorAll(arguments[0] + ' .row')].map(r => ({
  title: r.querySelector('h3').textContent,
  meta: r.querySelector('.meta').textContent,
  error: r.querySelector('.err').textContent,
  images: [...r.querySelectorAll('figure img')].map(i => i.complete && i.naturalWidth > 0),
  alts: [...r.querySelectorAll('figure img')].map(i => i.alt),
  texts: [...r.querySelectorAll('figure .text')].map(t => t.textContent),
  agree: r.querySelector('.foot').firstChild.textContent,
  download: (r.querySelector('a[download]') || {}).download || null,
}));
"""


def rows(browser, where: str) -> list[dict]:
    return browser.execute_script(ROWS_JS, where)


def done(row: dict) -> bool:
    return bool(row["error"]) or (row["meta"] not in ("", "working…") and all(t != "…" for t in row["texts"]))


def wait_rows(browser, where: str, count: int, timeout: float = 40) -> list[dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = rows(browser, where)
        if len(found) == count and all(done(r) for r in found):
            return found
        time.sleep(0.2)
    pytest.fail(f"{where}: expected {count} finished rows, got {rows(browser, where)}")


def assert_complete(row: dict) -> None:
    """A finished row without error: LR, bicubic and SR images loaded, each with a reading and its confidence."""
    assert not row["error"], row
    assert row["images"] == [True, True, True], row
    assert all(re.search(r"\(\d+%\)", t) for t in row["texts"]), row
    assert row["agree"] in ("SR and LR readings agree.", "SR and LR readings differ."), row
    assert "model: " in row["meta"] and " on CPU" in row["meta"] and "ms (server " in row["meta"], row
    assert row["download"] and row["download"].endswith("_sr.png"), row


def test_playground_in_chromium(server, browser, tmp_path):
    """First load shows every example; two uploads (one tiled); a bad file's error; then the page still works."""
    import cv2
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    start = time.time()
    browser.get(server.url + "/")
    examples = examples_doc()["examples"]
    shown = wait_rows(browser, "#examples", len(examples))
    for row, ex in zip(shown, examples):
        assert row["title"].startswith(ex["file"]) and ex["label"] in row["title"]
        assert_complete(row)
        assert row["alts"][0].startswith("LR: ") and row["alts"][1].startswith("bicubic 2x (browser)") and row["alts"][2].startswith("SR 2x")
        assert ("mode: tile" if ex["width"] / ex["height"] > 6 else "mode: resize") in row["meta"], row
    ran = browser.find_element(By.ID, "ran").text
    assert ran.startswith("Model ") and " on CPU" in ran and "recognizer " in ran, ran
    served = httpx.get(server.url + "/v1/models").json()["models"]
    hidden = browser.find_element(By.ID, "model-pick").get_attribute("hidden")
    assert bool(hidden) == (len(served) == 1), "a selector exactly when there is a model to choose"
    assert browser.find_element(By.ID, "auth").get_attribute("hidden"), "no key asked when the server has none"

    # README's picture: first load, the whole page (the window's own bars take ~140 px of its height)
    shot = SCREENSHOT if os.environ.get("TEXTSR_UPDATE_SCREENSHOT") == "1" else tmp_path / "playground.png"
    shot.parent.mkdir(exist_ok=True)
    browser.set_window_size(1100, 900)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1100, min(height + 140, 2000))
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    browser.set_window_size(1200, 900)

    # two files at once: a word (resize) and a 16x210 line (aspect 13: tile)
    pick = browser.find_element(By.ID, "pick")
    pick.send_keys(f"{ROOT / 'tests/data/word.png'}\n{ROOT / 'tests/data/line.png'}")
    word, line = wait_rows(browser, "#results", 2)
    assert word["title"] == "word.png" and line["title"] == "line.png"
    for row in (word, line):
        assert_complete(row)
    assert "mode: resize" in word["meta"] and "mode: tile" in line["meta"]

    # a .png that is text and an image over the pixel limit: the API's 400 and 413 in words next to each file
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"these are not the pixels you are looking for\n" * 20)
    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.full((2000, 2100, 3), 200, np.uint8))  # 4.2 Mpx > TEXTSR_MAX_IMAGE_PIXELS (4 M)
    pick.send_keys(f"{bad}\n{huge}")
    notes, big = wait_rows(browser, "#results", 4)[:2]
    assert notes["title"] == "notes.png" and big["title"] == "huge.png"
    assert notes["error"].startswith("notes.png: 400 bad request: ") and "not a decodable image" in notes["error"], notes
    assert big["error"].startswith("huge.png: 413 too large: ") and "exceeds the limit" in big["error"], big

    # an overloaded server (simulated in the page: the next /v1/upscale answers 503 with Retry-After) ...
    browser.execute_script("""
      window.realFetch = window.fetch;
      window.fetch = (url, init) => String(url).startsWith('/v1/upscale') ? Promise.resolve(new Response(
        JSON.stringify({error: {code: 'queue_full', message: 'the queue is full'}}),
        {status: 503, headers: {'Retry-After': '2', 'Content-Type': 'application/json'}})) : window.realFetch(url, init);
    """)
    pick.send_keys(str(ROOT / "tests/data/word.png"))
    busy = wait_rows(browser, "#results", 5)[0]
    assert busy["error"] == "word.png: 503 service unavailable: the queue is full (retry after 2 s)", busy
    # ... and the page keeps working: the row's retry button, from the keyboard, once the server answers again
    browser.execute_script("window.fetch = window.realFetch;")
    retry = browser.find_element(By.CSS_SELECTOR, "#results .row button")
    assert retry.text == "retry"
    retry.send_keys(Keys.ENTER)
    again = wait_rows(browser, "#results", 5)
    assert_complete(again[0])
    assert [r["title"] for r in again] == ["word.png", "notes.png", "huge.png", "word.png", "line.png"]
    assert all(r["images"] == [True, True, True] and not r["error"] for r in rows(browser, "#examples")), "examples untouched"

    # paste (Ctrl+V) and drag-and-drop: the same rows (the events carry a File, as the browser's would)
    browser.execute_async_script("""
      const done = arguments[arguments.length - 1];
      fetch('/static/examples/example-1.png').then(r => r.blob()).then(blob => {
        const files = name => { const dt = new DataTransfer(); dt.items.add(new File([blob], name, {type: 'image/png'})); return dt; };
        document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: files('pasted.png')}));
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: files('dropped.png')}));
        done();
      });
    """)
    dropped, pasted = wait_rows(browser, "#results", 7)[:2]
    assert (dropped["title"], pasted["title"]) == ("dropped.png", "pasted.png")
    assert_complete(dropped)
    assert_complete(pasted)

    # pixelated by default; the toggle smooths
    rendering = "return getComputedStyle(document.querySelector('#examples figure img')).imageRendering"
    assert browser.execute_script(rendering) == "pixelated"
    browser.find_element(By.ID, "smooth").send_keys(Keys.SPACE)
    assert browser.execute_script(rendering) == "auto"
    assert time.time() - start < 60


def test_screenshot_in_readme_exists():
    assert "docs/playground.png" in (ROOT / "README.md").read_text()
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def two_models(models_root, tmp_path) -> Path:
    """The default model twice, under two names (a second manifest pointing at the same graph)."""
    src = sorted(models_root.glob("*/manifest.json"))[0].parent
    for suffix in ("", "-copy"):
        folder = tmp_path / f"m{suffix}"
        folder.mkdir()
        manifest = json.loads((src / "manifest.json").read_text())
        manifest["name"] += suffix
        (folder / "manifest.json").write_text(json.dumps(manifest))
        files = [graph["file"] for graph in manifest["graphs"]]
        if (manifest.get("text_prior") or {}).get("bundled"):
            files.append(manifest["text_prior"]["recognizer"])
        for name in files:
            if (src / name).exists():
                (folder / name).symlink_to(src / name)
    return tmp_path


def test_playground_asks_for_the_key_and_offers_the_models(two_models, browser, tmp_path):
    """Keyed server with two models: 401 -> the key field; after the key, examples render; the selector switches model."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    server = ServerProcess(two_models, tmp_path / "server.log", TEXTSR_API_KEY="s3cret").wait_ready()
    try:
        browser.get(server.url + "/")
        deadline = time.time() + 20
        while browser.find_element(By.ID, "auth").get_attribute("hidden") and time.time() < deadline:
            time.sleep(0.1)
        key = browser.find_element(By.ID, "key")
        assert key.is_displayed() and browser.switch_to.active_element == key, "the key field is shown and focused"
        key.send_keys("s3cret\n")  # Enter submits: keyboard only
        count = len(examples_doc()["examples"])
        assert all(not r["error"] for r in wait_rows(browser, "#examples", count))
        select = Select(browser.find_element(By.ID, "model"))
        names = [o.text for o in select.options]
        assert browser.find_element(By.ID, "model-pick").is_displayed() and len(names) == 2
        other = next(n for n in names if n.endswith("-copy") != select.first_selected_option.text.endswith("-copy"))
        select.select_by_visible_text(other)
        deadline = time.time() + 30
        while time.time() < deadline:
            shown = rows(browser, "#examples")
            if all(done(r) and f"model: {other} " in r["meta"] for r in shown):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"rows did not re-run on {other}: {rows(browser, '#examples')}")
        assert all(not r["error"] for r in shown)
    finally:
        server.stop()
