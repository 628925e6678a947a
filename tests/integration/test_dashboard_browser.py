"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright) against the real pipeline.

A person signs in with the API token, sees an order placed through the sandbox appear and change state without
reloading the page, and the page fits a phone's width. Screenshots are kept under ``OTPFLOW_ARTIFACTS`` (CI sets
it; default: the test's temporary directory). The browser is the system's: Playwright never downloads one here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis as redis_lib

from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}


def artifacts_dir(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("OTPFLOW_ARTIFACTS") or tmp_path / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def pipeline(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    url = f"{redis_server_url}/11"
    redis_lib.Redis.from_url(url).flushdb()
    # the code is sent by hand after the page has shown the waiting number: nothing may time out before that
    pipe = Pipeline(redis_url=url, log_dir=Path(tmp_path_factory.mktemp("dashboard-logs")),
                    extra_env={"ACTIVATION_TIMEOUT": "300"})
    try:
        pipe.start()
        yield pipe
    finally:
        pipe.stop()


def test_sign_in_and_watch_an_order_without_a_reload(pipeline: Pipeline, browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{pipeline.base_url}/dashboard")
    page.fill("#token", "not the token")
    page.click("button[type=submit]")
    assert "not the API token" in page.inner_text("main")

    page.fill("#token", pipeline.api_token)
    page.click("button[type=submit]")
    page.wait_for_selector("#panels")
    assert pipeline.api_token not in page.url
    cookie = next(c for c in context.cookies() if c["name"] == "otpflow_dashboard")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts
    page.evaluate("window.__same_page = true")  # a reload would forget it

    # the worker and the beat are heard of (the sweep runs every SWEEP_INTERVAL)
    page.wait_for_selector('[data-heartbeat="beat"].ok', timeout=30_000)
    page.wait_for_selector('[data-heartbeat="worker"].ok', timeout=30_000)

    order_id = pipeline.order("tg")
    waiting = f'[data-panel="in-flight"] tr[data-order-id="{order_id}"][data-state="waiting"]'
    page.wait_for_selector(waiting, timeout=30_000)
    row = page.inner_text(waiting)
    assigned = pipeline.wait_event(order_id, "number.assigned")
    assert assigned["phone"] in row
    page.screenshot(path=str(artifacts_dir(tmp_path) / "dashboard-waiting.png"), full_page=True)

    pipeline.control("sms", {"activation_id": assigned["activation_id"], "code": "424242",
                             "text": "Your code is 424242"})
    finished = f'[data-panel="recent"] tr[data-order-id="{order_id}"][data-state="finished"]'
    page.wait_for_selector(finished, timeout=30_000)
    assert "424242" in page.inner_text(finished)
    page.wait_for_selector(f'[data-panel="in-flight"] tr[data-order-id="{order_id}"]', state="detached",
                           timeout=30_000)
    page.wait_for_selector('[data-panel="events"] li[data-type="order.completed"]', timeout=30_000)
    assert page.evaluate("window.__same_page") is True
    provider = page.inner_text('[data-panel="providers"] tr[data-provider="sms-activate"]')
    assert "100 %" in provider  # one number, finished
    page.screenshot(path=str(artifacts_dir(tmp_path) / "dashboard.png"), full_page=True)

    # at a phone's width nothing sticks out of the page (wide tables scroll inside their cards)
    page.set_viewport_size(PHONE)
    wait_until(lambda: page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], timeout=10,
               message=lambda: f"page {page.evaluate('document.documentElement.scrollWidth')} px wide")
    page.screenshot(path=str(artifacts_dir(tmp_path) / "dashboard-phone.png"), full_page=True)

    page.click("header .signout button")
    page.wait_for_selector("#token")
    context.close()
