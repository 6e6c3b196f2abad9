"""End to end in a real browser: Debian's Chromium, driven by Playwright, uses the Edit tab.

Set up with ``bash scripts/install-browser.sh`` (it runs ``apt-get install chromium``, so it needs root or
sudo; ``LIVEPORTRAIT_CHROMIUM`` names another binary). Without Chromium or Playwright the browser tests
skip with the reason, except when CI=true, where they fail. The check comes first, before the app starts.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from tests.conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[2]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def find_chromium() -> tuple[str | None, str]:
    """The Chromium binary, or None and why there is none."""
    named = os.environ.get("LIVEPORTRAIT_CHROMIUM")
    if named:
        if os.path.isfile(named) and os.access(named, os.X_OK):
            return named, ""
        return None, f"LIVEPORTRAIT_CHROMIUM={named} is not an executable file"
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if path:
        return path, ""
    return None, ("Chromium is not installed, so the browser test cannot run: as root, bash scripts/install-browser.sh "
                  "(apt-get install chromium), or set LIVEPORTRAIT_CHROMIUM")


@pytest.fixture(scope="session")
def browser_kit(need):
    """(Chromium's path, playwright.sync_api): skip (fail under CI=true) when either is missing."""
    path, reason = find_chromium()
    if path is None:
        skip_or_fail(reason)
    return path, need("playwright.sync_api", "bash scripts/install-browser.sh")


def test_upload_a_photo_move_a_slider_and_get_the_edited_picture(browser_kit, app_url, examples_dir,
                                                                  outside_traffic, net_calls, tmp_path):
    browser_path, sync_api = browser_kit
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
            slider.scroll_into_view_if_needed()
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


def test_an_error_stays_beside_the_input_and_the_example_loads(browser_kit, app_url, outside_traffic, tmp_path):
    """No ../shared needed: a wrong upload leaves its message in the tab (the toast fades), and the
    painted example photo prepares like an upload and clears it."""
    browser_path, sync_api = browser_kit
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not a picture at all")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.set_default_timeout(180_000)
            page.goto(app_url)
            page.get_by_role("tab", name="Edit").click()
            page.locator("#edit-photo input[type=file]").set_input_files(str(fake))
            error = page.locator("#edit-error")
            sync_api.expect(error).to_contain_text("holiday.jpg is not a photo")
            page.wait_for_timeout(12_000)  # longer than the toast stays
            sync_api.expect(error).to_contain_text("holiday.jpg is not a photo")

            page.locator("#edit-examples img").first.click()  # the example's thumbnail
            sync_api.expect(page.locator("#edit-status")).to_contain_text("Ready")
            page.locator("#edit-preview img").wait_for(state="visible")
            sync_api.expect(error).not_to_contain_text("holiday.jpg")
        finally:
            browser.close()
    assert outside_traffic.seen == []


def test_the_animate_tab_at_1400x1000_shows_its_button_previews_and_example_pictures(browser_kit, app_url,
                                                                                      app_backend, tmp_path):
    """What a user sees first: Animate in view without scrolling, the chosen photo and driving as a picture
    and a video, the examples as pictures with labels, and no live speech controls where speech cannot run
    (this app has no audio weights)."""
    browser_path, sync_api = browser_kit
    photo = app_backend.workdir / "examples/painted-open-mouth.png"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(app_url)
            run = page.locator("#animate-run")
            run.wait_for(state="visible")

            def in_view(locator):
                box = locator.bounding_box()
                return (box is not None and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 1400
                        and box["y"] + box["height"] <= 1000)

            assert page.evaluate("window.scrollY") == 0 and in_view(run), run.bounding_box()

            # speech cannot run here: the reason is shown, and neither its upload nor its seed takes input
            sync_api.expect(page.locator("#animate-audio-note")).to_contain_text("not available here")
            live = page.locator("#animate-audio button:enabled, #animate-audio input:enabled, "
                                "#animate-seed input:enabled")
            assert [c for c in live.all() if c.is_visible() and c.is_enabled()] == []

            # the examples are pictures (loaded) with a readable label
            examples = page.locator("#animate-examples img")
            sync_api.expect(examples).to_have_count(2)
            page.wait_for_function("[...document.querySelectorAll('#animate-examples img')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            sync_api.expect(page.locator("#animate-examples")).to_contain_text("Painted portrait, driven by")

            # a chosen photo shows as a picture under its file
            page.locator("#animate-source input[type=file]").set_input_files(str(photo))
            picture = page.locator("#animate-source-picture img")
            picture.wait_for(state="visible")
            page.wait_for_function("document.querySelector('#animate-source-picture img').naturalWidth === 512")

            # an example picked by its thumbnail: its photo and its driving video are shown
            examples.first.click()
            page.locator("#animate-driving-clip video").wait_for(state="visible")
            sync_api.expect(page.locator("#animate-source")).to_contain_text("painted-portrait")
            sync_api.expect(picture).to_have_attribute("src", re.compile(r"painted-portrait\.png$"))
            assert in_view(run)  # still in view with both previews
            page.wait_for_timeout(1000)  # the previews fade in
            page.screenshot(path=str(tmp_path / "animate-tab-1400x1000.png"))
        finally:
            browser.close()


def test_draw_a_crop_box_with_two_clicks_and_animate_it(browser_kit, app_url, examples_dir, short_clip,
                                                       outside_traffic, tmp_path, monkeypatch):
    """The Animate tab's crop box: two clicks on the source picture give the box (in the picture's pixels,
    whatever size it is shown at), drawn on it; Animate then frames exactly that box."""
    browser_path, sync_api = browser_kit
    from PIL import Image

    photo = tmp_path / "drawing.png"
    y, x = np.mgrid[0:300, 0:400]
    Image.fromarray(np.stack([x * 0.5 + 40, y * 0.6 + 40, 0 * x + 160], -1).astype(np.uint8)).save(photo)
    driving = short_clip(examples_dir / "driving/d12.mp4", 2)
    seen = []
    from liveportrait.face.cropper import Cropper

    real = Cropper.crop_from_box
    monkeypatch.setattr(Cropper, "crop_from_box", lambda self, image, b, **kw: seen.append(b) or
                        real(self, image, b, **kw))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.set_default_timeout(180_000)
            page.goto(app_url)
            page.locator("#animate-source input[type=file]").set_input_files(str(photo))
            page.locator("#animate-box-accordion").get_by_text("Crop box").first.click()
            img = page.locator("#animate-box-image img")
            img.wait_for(state="visible")
            page.wait_for_function("document.querySelector('#animate-box-image img').naturalWidth === 400")
            img.scroll_into_view_if_needed()  # under the inputs, maybe below the fold

            def click_at(px, py):
                """Click the picture's pixel (px, py): shown scaled down to fit (never up), centred."""
                r = img.bounding_box()
                s = min(r["width"] / 400, r["height"] / 300, 1.0)
                ox, oy = (r["width"] - 400 * s) / 2, (r["height"] - 300 * s) / 2
                page.mouse.click(r["x"] + ox + (px + 0.5) * s, r["y"] + oy + (py + 0.5) * s)

            box = page.locator("#animate-crop-box textarea, #animate-crop-box input").first
            click_at(50, 40)
            page.wait_for_timeout(1500)
            assert box.input_value() == ""  # one corner so far
            click_at(250, 260)
            sync_api.expect(box).not_to_have_value("", timeout=30_000)
            x0, y0, x1, y1 = (int(v) for v in box.input_value().split(","))
            assert max(abs(x0 - 50), abs(y0 - 40), abs(x1 - 250), abs(y1 - 260)) <= 2, box.input_value()
            drawn = box.input_value()

            page.locator("#animate-driving input[type=file]").set_input_files(str(driving))
            page.locator("#animate-run").click()
            page.locator("#animate-video video").wait_for(state="visible")
            page.screenshot(path=str(tmp_path / "animate-box.png"), full_page=True)
        finally:
            browser.close()
    # the drawn box is the crop (no face was looked for around it)
    assert [",".join(str(round(v)) for v in b) for b in seen] == [drawn]
    assert outside_traffic.seen == []


def _run_browser_test(env_changes: dict[str, str | None], tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in env_changes}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    test = "tests/app/test_browser.py::test_upload_a_photo_move_a_slider_and_get_the_edited_picture"
    return subprocess.run([sys.executable, "-m", "pytest", test, "-q", "-rsf", "-p", "no:cacheprovider",
                           "--basetemp", str(tmp_path / "inner")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_without_chromium_the_browser_test_skips_with_the_reason_but_fails_under_ci(tmp_path):
    missing = str(tmp_path / "no-such-chromium")
    outside = _run_browser_test({"CI": None, "LIVEPORTRAIT_CHROMIUM": missing}, tmp_path)
    assert outside.returncode == 0, outside.stdout + outside.stderr
    assert "1 skipped" in outside.stdout and f"LIVEPORTRAIT_CHROMIUM={missing} is not an executable" in outside.stdout

    in_ci = _run_browser_test({"CI": "true", "LIVEPORTRAIT_CHROMIUM": missing}, tmp_path)
    assert in_ci.returncode == 1, in_ci.stdout + in_ci.stderr
    summary = in_ci.stdout.strip().splitlines()[-1]  # a fixture's failure counts as an error
    assert ("1 failed" in summary or "1 error" in summary) and "skipped" not in summary, summary
    assert f"LIVEPORTRAIT_CHROMIUM={missing} is not an executable" in in_ci.stdout


def _fake_bin(folder: Path, uid: int, apt: bool) -> Path:
    """A PATH of its own: a fake ``id``, ``sudo`` that wants a password, maybe an ``apt-get`` that notes
    its calls, and the venv's python; no chromium."""
    folder.mkdir()
    (folder / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (folder / "sudo").write_text("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    if apt:
        (folder / "apt-get").write_text(f"#!/bin/sh\necho \"$@\" >> {folder}/apt-calls\n")
    for f in folder.iterdir():
        f.chmod(0o755)
    (folder / "dirname").symlink_to(shutil.which("dirname"))
    return folder


@pytest.mark.parametrize("apt", [True, False], ids=["not-root", "no-apt"])
def test_install_browser_says_what_it_does_and_skips_chromium_when_it_cannot(tmp_path, apt):
    fake = _fake_bin(tmp_path / "bin", 1000, apt)
    env = {"PATH": f"{fake}:{Path(sys.executable).parent}", "HOME": str(tmp_path), "VIRTUAL_ENV": sys.prefix,
           "PIP_NO_INDEX": "1", "LIVEPORTRAIT_PLAYWRIGHT": "playwright"}  # already installed: no download
    run = subprocess.run(["/bin/bash", str(REPO / "scripts/install-browser.sh")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    if apt:
        assert "installing it (apt-get install chromium" in run.stderr
        assert "needs root or sudo; skipping it" in run.stderr
    else:
        assert "no apt-get here" in run.stderr
    assert "test_browser.py will skip (and fail under CI=true)" in run.stderr
    assert not (fake / "apt-calls").exists(), "apt-get ran without root"
