"""The status page behind access control, in Debian's Chromium driven by Playwright.

A browser cannot add a bearer header to a navigation: it answers the 401's Basic challenge
(here with Playwright's http_credentials, as a person would type them on a phone), caches the
credentials for the realm, and sends them again with the page's own fetches to /api/v1.
Chromium reads one WWW-Authenticate line as one challenge, so zeroprobe sends Bearer and
Basic on lines of their own; with both on one line Chromium never answers with Basic.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from schemas.grading import Grade, Line
from tests.status_page_support import BackgroundServer, Script, scripted, stage
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
TOKEN = "zp-browser-5c0ffee5c0ffee5c0ffee"
SERVICE_ID = "auth.page.probe"
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    settings = Settings(auth_token=TOKEN)
    engine = Engine([scripted(SERVICE_ID)], settings, {}, kinds=Script().kinds())
    stage(engine, SERVICE_ID, [Line("- member db1:27017 lag 10ms", Grade.GREEN)])
    running = BackgroundServer(engine, start_engine=False).start()
    try:
        yield running
    finally:
        running.stop()


def test_page_loads_and_refreshes_with_basic_credentials(
    browser: Browser, server: BackgroundServer
) -> None:
    context = browser.new_context(http_credentials={"username": "oncall", "password": TOKEN})
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        api_statuses: list[int] = []
        page.on(
            "response",
            lambda r: api_statuses.append(r.status) if "/api/v1/" in r.url else None,
        )
        response = page.goto(f"{server.url}/?refresh=1")
        assert response is not None and response.status == 200
        card = page.locator(f'#probes > li[data-service-id="{SERVICE_ID}"]')
        assert "GREEN" in card.inner_text()

        # A new result reaches the page only through its fetch of /api/v1/results.
        server.call(
            lambda: _stage_async(server.engine, [Line("- member db1:27017 lag 9000ms", Grade.RED)])
        )
        page.wait_for_function(
            "(id) => document.querySelector(`#probes > li[data-service-id='${id}']`)"
            "?.innerText.includes('RED')",
            arg=SERVICE_ID,
        )
        assert page.locator("#contact").is_hidden()
        assert 200 in api_statuses
    finally:
        context.close()


async def _stage_async(engine: Engine, lines: list[Line]) -> None:
    stage(engine, SERVICE_ID, lines, age_s=0.1)


def test_page_is_refused_with_a_wrong_password(browser: Browser, server: BackgroundServer) -> None:
    context = browser.new_context(
        http_credentials={"username": "oncall", "password": "wrong-password-of-some-length"}
    )
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        response = page.goto(f"{server.url}/")
        assert response is not None and response.status == 401
        assert SERVICE_ID not in page.content()
    finally:
        context.close()


def test_page_without_credentials_asks_for_them(browser: Browser, server: BackgroundServer) -> None:
    """Headless Chromium cannot show the login prompt a phone would: it gives up on the Basic
    challenge it recognised, and the navigation fails without showing anything."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            page.goto(f"{server.url}/")
    finally:
        context.close()
