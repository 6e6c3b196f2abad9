"""End to end in a real browser: Debian's Chromium, driven by Playwright, uses the Edit tab.

Set up with ``bash scripts/install-browser.sh``. Without Chromium or Playwright the test is skipped
with the reason, except when CI=true, where it must run.
"""

from __future__ import annotations

import io
import os
import shutil
import urllib.request
from urllib.parse import urlparse

import numpy as np
import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        msg = "Chromium is not installed (bash scripts/install-browser.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + "; CI=true, so the browser test must run", pytrace=False)
        pytest.skip(msg)
    return path


def test_upload_a_photo_move_a_slider_and_get_the_edited_picture(app_url, need, examples_dir, outside_traffic,
                                                                  net_calls, tmp_path):
    browser_path = chromium_path()
    sync_api = need("playwright.sync_api", "bash scripts/install-browser.sh")
    from PIL import Image

    photo = examples_dir / "source/s1.jpg"
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.on("request", lambda r: requests.append(r.url))
            page.set_default_timeout(180_000)
            page.goto(app_url)
            page.get_by_role("tab", name="Edit").click()

            # upload: F and M run once, the framed face and the source's ratios come back
            net_calls.clear()
            page.locator("#edit-photo input[type=file]").set_input_files(str(photo))
            page.locator("#edit-preview img").wait_for(state="visible")
            sync_api.expect(page.locator("#edit-status")).to_contain_text("Ready")
            assert net_calls["F"] == 1 and net_calls["M"] == 1

            # move the smile slider with the mouse: on release the edit renders (W and G only)
            net_calls.clear()
            slider = page.locator("#edit-smile input[type=range]")
            box = slider.bounding_box()
            page.mouse.click(box["x"] + 0.85 * box["width"], box["y"] + box["height"] / 2)
            result = page.locator("#edit-result img")
            result.wait_for(state="visible")
            assert float(slider.input_value()) > 0.5
            assert net_calls["W"] == 1 and net_calls["G"] == 1 and net_calls["F"] == 0 and net_calls["M"] == 0
            page.screenshot(path=str(tmp_path / "edit-tab.png"), full_page=True)
            src = result.get_attribute("src")
        finally:
            browser.close()

    # the picture the page shows is the whole photo with the edited face pasted back
    with urllib.request.urlopen(src, timeout=30) as r:
        edited = np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))
    original = np.asarray(Image.open(photo).convert("RGB"))
    assert edited.shape == original.shape
    assert np.abs(edited[:60, :60].astype(int) - original[:60, :60]).mean() < 2

    # the page asked nothing of any other host, and neither did the app
    app_host = urlparse(app_url).netloc
    outside = [u for u in requests if not u.startswith(("data:", "blob:")) and urlparse(u).netloc != app_host]
    assert outside == [], f"the page requested outside resources: {outside[:5]}"
    assert outside_traffic.seen == []
