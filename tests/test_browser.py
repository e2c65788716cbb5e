"""The status page in a real browser: Debian's Chromium, headless, driven by Playwright.

zeroprobe serves from a background thread (its own event loop); the tests use Playwright's
sync API from the test's thread. The live server probes simulated replica sets whose lags the
tests set; a second, staged server with a fixed clock makes the README's screenshots.
Expectations come from issue 5.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Playwright,
    sync_playwright,
)

from schemas.context_spec import MongoReplicationLagSpec
from schemas.grading import Grade, Line
from tests.conftest import TESTS
from tests.notify_fakes import FakeReceiver
from tests.notify_support import line, write_notifiers
from tests.status_page_support import (
    XSS_BODY,
    XSS_DESCRIPTION,
    XSS_LINES,
    BackgroundServer,
    Script,
    scripted,
    stage,
    staged_engine,
)
from zeroprobe.config.loader import ContextFile, load_contexts
from zeroprobe.config.notifiers import load_notifiers
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.notify.notifier import Notifier
from zeroprobe.simulators.mongo import SimulatedReplicaSet
from zeroprobe.web import api
from zeroprobe.web import page as ui

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = TESTS.parent / "docs" / "screenshots"
WAIT_MS = 15_000
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 800}

RUNBOOK = """# Orders replication lag

**Goal.** Every secondary applies the primary's writes within 5 seconds.

**Runbook.**
1. Open the line of the worst member.
2. `unreachable`: is the host up? `mongosh --host <member> --eval 'db.hello()'`
3. Escalate to the database team after 30 minutes of RED.
"""
EVERY_SECOND = {"interval": "1s", "timeout": "0.8s"}
# The Mongo probes get more room: a browser on two cores can slow the simulated set down.
MONGO_PACE = {"interval": "2s", "timeout": "1.8s"}
LONG_ID = "payments.platform.eu-west-1.production.primary-cluster.mongo.replicationlag"
LONG_LINE = "- Secondary " + "x" * 120 + ".internal:27017 https://grafana.example.com/" + "y" * 80


# The browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


# Records what a page did that it should not: dialogs, console errors, CSP violations.
RECORDER = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@dataclass
class Tab:
    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        found: list[str] = self.page.evaluate("window.__violations || []")
        return found

    def assert_clean(self) -> None:
        assert self.dialogs == []
        assert self.errors == []
        assert self.violations() == []


def open_tab(
    browser: Browser,
    url: str,
    *,
    viewport: dict[str, int] = DESKTOP,
    script: bool = True,
    scale: float = 1,
    at_ms: int | None = None,
) -> Tab:
    """A fresh context and page at `url`; `script=False` blocks app.js (the server's HTML)."""
    context = browser.new_context(
        viewport={"width": viewport["width"], "height": viewport["height"]},
        device_scale_factor=scale,
        timezone_id="UTC",
        locale="en-GB",
        color_scheme="light",
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    tab = Tab(page)
    page.on("dialog", lambda dialog: _dismiss(tab, dialog))
    page.on("console", lambda message: _console(tab, message))
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    page.add_init_script(RECORDER)
    if at_ms is not None:
        page.clock.set_fixed_time(at_ms)
    if not script:
        page.route(
            "**/static/app.js*",
            lambda route: route.fulfill(status=200, content_type="text/javascript", body=""),
        )
    page.goto(url)
    if script:
        wait_refreshed(page)
    return tab


def _dismiss(tab: Tab, dialog: Dialog) -> None:
    tab.dialogs.append(dialog.message)
    dialog.dismiss()


def _console(tab: Tab, message: ConsoleMessage) -> None:
    if message.type == "error":
        tab.errors.append(message.text)


def wait_refreshed(page: Page, after: str | None = None) -> str:
    """Wait until the page's script has (re)drawn the page from the JSON API."""
    page.wait_for_function(
        "(after) => (document.body.dataset.refreshedAt || after) !== after", arg=after or ""
    )
    refreshed: str = page.evaluate("document.body.dataset.refreshedAt")
    return refreshed


def closing(tab: Tab) -> None:
    tab.page.context.close()


def attached(locator: Locator, script: str, attempts: int = 5) -> Any:
    """`locator.evaluate(script)` on an element still in the page: with ?refresh=1 the page
    redraws its cards every second, and an element replaced between Playwright's finding it
    and the script's run is detached (its computed style is empty). Such a run is retried."""
    for _ in range(attempts):
        value = locator.evaluate(f"e => e.isConnected ? ({script})(e) : null")
        if value is not None:
            return value
    raise AssertionError(f"{locator} stayed detached")


def colour_of(rgb: str) -> str:
    """GREEN, YELLOW or RED for a CSS colour, or the colour itself."""
    match = re.match(r"rgba?\((\d+), (\d+), (\d+)", rgb)
    assert match, rgb
    r, g, b = (int(x) for x in match.groups())
    if r > 150 and g < 100 and b < 100:
        return "RED"
    if r > 180 and g > 140 and b < 100:
        return "YELLOW"
    if g > 100 and r < 100 and b < 120:
        return "GREEN"
    return rgb


def card(page: Page, service_id: str) -> Any:
    return page.locator(f'#probes > li[data-service-id="{service_id}"]')


# A live zeroprobe -------------------------------------------------------------------------------


@dataclass
class Live:
    server: BackgroundServer
    changing: SimulatedReplicaSet

    @property
    def url(self) -> str:
        return self.server.url


def write_spec(folder: Path, name: str, fields: dict[str, Any], body: str = "") -> None:
    front = yaml.safe_dump(fields, sort_keys=False, allow_unicode=True)
    (folder / name).write_text(f"---\n{front}---\n{body}", encoding="utf-8")


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """zeroprobe probing two simulated replica sets every second, plus scripted probes."""
    steady = SimulatedReplicaSet(lag_fn=lambda member, elapsed_s: 300.0 if member else 0.0)
    changing = SimulatedReplicaSet(lag_fn=lambda member, elapsed_s: 0.0)
    steady.start()
    changing.start()
    folder = tmp_path_factory.mktemp("contexts")
    every_second = {"kind": "mongo_replication_lag", **MONGO_PACE}
    specs: list[tuple[str, dict[str, Any], str]] = [
        ("shop.orders.lag", {"description": "Orders replica set"}, RUNBOOK),
        ("shop.billing.lag", {"thresholds": {"yellow": 100, "red": 100000}}, ""),
        ("shop.search.lag", {"thresholds": {"yellow": 50, "red": 200}}, ""),
        ("shop.live.lag", {"connection": "changing"}, ""),
        ("evil.spec", {"description": XSS_DESCRIPTION}, XSS_BODY),
    ]
    for service_id, fields, body in specs:
        values = {"service_id": service_id, **every_second, "connection": "steady", **fields}
        write_spec(folder, f"{service_id}.md", values, body)
    environ = {
        "ZEROPROBE_CONNECTION_STEADY": steady.uri,
        "ZEROPROBE_CONNECTION_CHANGING": changing.uri,
    }
    report = load_contexts(folder, environ)
    assert report.ok, report.errors
    script = Script(
        {
            "evil.lines": list(XSS_LINES),
            LONG_ID: [Line(LONG_LINE, Grade.YELLOW), Line("- `" + "z" * 90 + "`", Grade.GREEN)],
        }
    )
    contexts = [
        *report.specs,
        scripted("evil.lines", description=XSS_DESCRIPTION, body=XSS_BODY, **EVERY_SECOND),
        scripted(LONG_ID, description="A long id " + "and a long description " * 6),
    ]
    engine = Engine(contexts, Settings(first_run_spread_s=0), environ, kinds=script.kinds())
    server = BackgroundServer(engine).start()
    try:
        wait_until(
            lambda: all(engine.store.newest(sid) for sid in engine.contexts), "first results"
        )
        yield Live(server, changing)
    finally:
        server.stop()
        stoppers = [threading.Thread(target=rs.stop) for rs in (steady, changing)]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()


# The page ---------------------------------------------------------------------------------------


def tapped_caption_matches_title(probe: Locator, attempts: int = 5) -> bool:
    """Tap the newest run of the strip; True once the caption is that run's title."""
    for _ in range(attempts):
        last = probe.locator(".history > li:not(.empty)").last
        title = last.get_attribute("title") or ""
        last.click()
        if probe.locator(".history-caption").inner_text() == title:
            return True
    return False


def test_page_lists_the_probes_with_their_colours_and_status_words(
    browser: Browser, live: Live
) -> None:
    tab = open_tab(browser, f"{live.url}/?refresh=1")
    page = tab.page
    expected = {"shop.search.lag": "RED", "shop.billing.lag": "YELLOW", "shop.orders.lag": "GREEN"}

    order = page.eval_on_selector_all(
        "#probes > li", "cards => cards.map(c => c.dataset.serviceId)"
    )
    assert [sid for sid in order if sid in expected] == list(expected), "worst first"
    for service_id, status in expected.items():
        probe = card(page, service_id)
        badge = probe.locator(".badge")
        assert badge.inner_text() == status
        background = attached(badge, "e => getComputedStyle(e).backgroundColor")
        assert colour_of(background) == status
        edge = attached(probe, "e => getComputedStyle(e).borderLeftColor")
        assert colour_of(edge) == status
        assert re.fullmatch(r"collected \d+ s ago", probe.locator(".age").inner_text())
        # One line per member, each with its own grade in words, then the set's own lines:
        # the majority commit point when it grades (300 ms behind, as the secondaries are)
        # and the oplog window.
        marks = probe.locator(".line-mark").all_inner_texts()
        commit_point = [] if status == "GREEN" else [status]
        assert marks == ["GREEN", status, status, *commit_point, "GREEN"], "the primary first"
        assert "replication lag 300ms" in probe.locator(".lines").inner_text()
        assert probe.locator(".history > li").count() == 60
        filled = probe.locator(".history > li:not(.empty)")
        assert filled.count() >= 1
        # Title and colour in one script turn: the page redraws the strip every second.
        title, background = attached(
            filled.last, "e => [e.getAttribute('title') || '', getComputedStyle(e).backgroundColor]"
        )
        assert re.fullmatch(rf"{status} at \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d", title), title
        assert colour_of(background) == status
        # No hover on a phone: a tap writes the tooltip under the strip. The page refreshes
        # every second here and may redraw the strip between reading and tapping: try again.
        assert tapped_caption_matches_title(probe), "a tap shows the run's tooltip"
    assert card(page, "shop.orders.lag").locator(".probe-desc").inner_text() == (
        "Orders replica set"
    )
    badges = page.locator("#probes .badge").all_inner_texts()
    counts = [f"{badges.count(s)} {s}" for s in ("RED", "YELLOW", "GREEN") if s in badges]
    assert page.locator("#summary").inner_text().split("\n") == counts
    assert page.title() == "zeroprobe: " + ", ".join(counts[:2])
    assert page.locator("#contact").is_hidden()
    tab.assert_clean()
    closing(tab)


def test_a_status_change_appears_without_reload(browser: Browser, live: Live) -> None:
    tab = open_tab(browser, f"{live.url}/?refresh=1")
    page = tab.page
    page.evaluate("window.__sameDocument = true")
    probe = card(page, "shop.live.lag")
    assert probe.locator(".badge").inner_text() == "GREEN"
    try:
        for lag_ms, status in ((6120, "YELLOW"), (45_000, "RED")):
            live.changing.set_lag_ms(1, lag_ms)
            page.wait_for_function(
                """([sid, status]) => {
                    const card = document.querySelector(`#probes > li[data-service-id="${sid}"]`);
                    return card && card.querySelector(".badge").textContent === status;
                }""",
                arg=["shop.live.lag", status],
            )
            probe = card(page, "shop.live.lag")
            assert (
                colour_of(
                    probe.locator(".badge").evaluate("e => getComputedStyle(e).backgroundColor")
                )
                == status
            )
            assert f"replication lag {lag_ms}ms" in probe.locator(".lines").inner_text()
        history = probe.locator(".history > li").evaluate_all(
            "cells => cells.map(c => c.className)"
        )
        assert "cell status-YELLOW" in history
        assert history[-1] == "cell status-RED"
        reds = page.locator("#probes .badge").all_inner_texts().count("RED")
        assert page.title().startswith(f"zeroprobe: {reds} RED"), "the tab title follows"
        assert page.evaluate("window.__sameDocument") is True, "the page was not reloaded"
    finally:
        live.changing.set_lag_ms(1, None)
    tab.assert_clean()
    closing(tab)


def test_problems_only_filter(browser: Browser, live: Live) -> None:
    tab = open_tab(browser, f"{live.url}/?refresh=1")
    page = tab.page
    green = card(page, "shop.orders.lag")
    red = card(page, "shop.search.lag")

    page.get_by_role("link", name=re.compile("Problems only")).click()
    assert green.is_hidden()
    assert red.is_visible()
    assert "only=problems" in page.url
    assert "refresh=1" in page.url
    wait_refreshed(page, page.evaluate("document.body.dataset.refreshedAt"))
    assert card(page, "shop.orders.lag").is_hidden(), "stays filtered across refreshes"

    page.reload()
    wait_refreshed(page)
    assert card(page, "shop.orders.lag").is_hidden(), "the filter is in the URL"
    page.get_by_role("link", name=re.compile("^All")).click()
    assert card(page, "shop.orders.lag").is_visible()
    tab.assert_clean()
    closing(tab)


# Safety -----------------------------------------------------------------------------------------

INERT_CHECK = """() => ({
  xss: window.__xss === undefined ? null : String(window.__xss),
  scripts: Array.from(document.scripts).map((s) => s.getAttribute("src")),
  images: document.images.length,
  handlers: Array.from(document.querySelectorAll("*")).flatMap((e) =>
    Array.from(e.attributes).filter((a) => a.name.startsWith("on")).map((a) => a.name)),
  protocols: Array.from(document.querySelectorAll("a[href]")).map((a) => a.protocol),
})"""


@pytest.mark.parametrize("script", [True, False], ids=["script-rendered", "server-rendered"])
def test_hostile_specs_and_lines_render_inert(browser: Browser, live: Live, script: bool) -> None:
    for path in ("/?refresh=1", "/ui/evil.spec?refresh=1", "/ui/evil.lines?refresh=1"):
        tab = open_tab(browser, live.url + path, script=script)
        page = tab.page
        page.wait_for_timeout(300)  # time for anything injected to run

        state = page.evaluate(INERT_CHECK)
        assert state["xss"] is None, (path, state)
        assert len(state["scripts"]) == 1
        assert state["scripts"][0].startswith("/static/app.js")
        assert state["images"] == 0
        assert state["handlers"] == []
        assert set(state["protocols"]) <= {"http:", "https:", "mailto:"}
        assert tab.dialogs == []
        assert tab.violations() == [], "nothing inline even reached the CSP"
        # The payloads are visible as text.
        text = page.locator("main").inner_text()
        assert '<script>window.__xss = "description script"</script>' in text, path
        if "evil.lines" in path or path.startswith("/?"):
            assert "onerror=\"window.__xss='line img'\"" in text
            assert "[click](javascript:window.__xss='line link')" in text
            assert page.locator(".line-text strong", has_text="formatted").count() >= 1
            assert page.locator(".line-text code", has_text="db2:27017").count() >= 1
        if path.startswith("/ui/"):
            runbook = page.locator(".runbook").inner_text()
            assert '<script>window.__xss = "body script"</script>' in runbook
            assert "[me](javascript:window.__xss='body link')" in runbook
            assert page.locator(".runbook strong", has_text="Bold").count() == 1
            link = page.locator(".runbook a", has_text="the wiki")
            assert link.get_attribute("href") == "https://wiki.example.com/runbook"
        closing(tab)


# Layout -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", f"/ui/{LONG_ID}", "/ui/shop.orders.lag", "/ui/evil.spec"])
def test_phone_layout_has_no_horizontal_scroll(browser: Browser, live: Live, path: str) -> None:
    tab = open_tab(browser, live.url + path, viewport=PHONE)
    page = tab.page

    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{path}: {width}px wide"
    size = page.locator(".line-text").first.evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize)"
    )
    assert size >= 13, "readable without zooming"
    tab.assert_clean()
    closing(tab)


def test_detail_view_shows_the_runbook_settings_and_links(browser: Browser, live: Live) -> None:
    tab = open_tab(browser, f"{live.url}/ui/shop.orders.lag?refresh=1")
    page = tab.page

    assert page.locator("h1.probe-id").inner_text() == "shop.orders.lag"
    assert page.locator(".badge").inner_text() == "GREEN"
    runbook = page.locator(".runbook .markdown")
    assert runbook.locator("h1").inner_text() == "Orders replication lag"
    assert runbook.locator("ol > li").count() == 3
    assert runbook.locator("code", has_text="mongosh --host <member>").count() == 1
    settings = dict(
        zip(
            page.locator(".settings dt").all_inner_texts(),
            page.locator(".settings dd").all_inner_texts(),
            strict=True,
        )
    )
    assert settings["interval"] == "2s"
    assert settings["timeout"] == "1.8s"
    assert settings["connection"] == "steady"
    assert settings["thresholds.yellow"] == "5000"
    assert settings["file"].endswith("shop.orders.lag.md:2")
    hrefs = page.locator(".raw a").evaluate_all("links => links.map(a => a.href)")
    assert [h.removeprefix(live.url) for h in hrefs] == [
        "/shop.orders.lag",
        "/api/v1/results/shop.orders.lag",
        "/api/v1/results/shop.orders.lag/history",
    ]
    for href in hrefs:
        response = page.request.get(href)
        assert response.ok, href
        assert response.headers["content-type"].startswith("application/json")
    history = page.request.get(hrefs[2]).json()
    assert history["results"][-1]["status"] == "GREEN"
    wait_refreshed(page, page.evaluate("document.body.dataset.refreshedAt"))
    assert page.locator("#probes > li").count() == 1, "the script keeps the one probe"
    tab.assert_clean()
    closing(tab)


def test_lost_contact_banner_appears_when_the_service_stops(browser: Browser) -> None:
    script = Script({"solo.probe": [Line("- member db1:27017 lag 10ms", Grade.GREEN)]})
    engine = staged_engine([scripted("solo.probe", **EVERY_SECOND)], script, first_run_spread_s=0)
    server = BackgroundServer(engine).start()
    try:
        wait_until(lambda: engine.store.newest("solo.probe") is not None, "first result")
        tab = open_tab(browser, f"{server.url}/?refresh=1")
        page = tab.page
        banner = page.locator("#contact")
        assert banner.is_hidden()

        server.stop()
        banner.wait_for(state="visible")
        assert "Lost contact with zeroprobe" in banner.inner_text()
        assert card(page, "solo.probe").locator(".badge").inner_text() == "GREEN", "still shown"

        server.start()  # the same port
        banner.wait_for(state="hidden")
        assert page.locator("#contact").is_hidden()
        assert tab.dialogs == []
        assert tab.violations() == []
        closing(tab)
    finally:
        server.stop()


# The screenshots of the README, from a staged service with a fixed clock --------------------

NOW_MS = 1_773_457_960_000  # 2026-03-14 03:12:40 UTC: the middle of the night


# Per probe: replica set, description, past grades (G, Y, R; 15 s apart, oldest first), the age
# of the newest result, and its lines as (role, member, what, grade).
SHOWCASE: dict[str, tuple[str, str, str, float, list[tuple[str, str, str, Grade | None]]]] = {
    "payments.mongo.replicationlag": (
        "payments",
        "Payments replica set, per member",
        "G" * 44 + "Y" * 8 + "R" * 8,
        12,
        [
            ("Primary", "db1", "replication lag 0ms", Grade.GREEN),
            ("Secondary", "db2", "unreachable", Grade.RED),
            ("Secondary", "db3", "replication lag 6120ms", Grade.YELLOW),
        ],
    ),
    "orders.mongo.replicationlag": (
        "orders",
        "Orders replica set, per member",
        "G" * 30 + "Y" * 4 + "G" * 20 + "Y" * 6,
        12,
        [
            ("Primary", "db1", "replication lag 0ms", Grade.GREEN),
            ("Secondary", "db2", "replication lag 7450ms", Grade.YELLOW),
            ("Secondary", "db3", "replication lag 410ms", Grade.GREEN),
            ("Arbiter", "arb1", "(not graded: holds no data)", None),
        ],
    ),
    "mhp.zeroproblem.mongo.replcationlag": (
        "keeper",
        "Replication lag of the clusterKeeper replica set, per member",
        "G" * 50 + "Y" + "G" * 9,
        12,
        [
            ("Primary", "db1", "replication lag 0ms", Grade.GREEN),
            ("Secondary", "db2", "replication lag 310ms", Grade.GREEN),
            ("Secondary", "db3", "replication lag 250ms", Grade.GREEN),
        ],
    ),
    "reports.mongo.replicationlag": (
        "reports",
        "Reporting replica set (nightly jobs)",
        "G",
        7 * 60 + 5,
        [("Secondary", "db2", "replication lag 120ms", Grade.GREEN)],
    ),
}


def mongo_spec(service_id: str, connection: str, description: str) -> ContextFile:
    spec = MongoReplicationLagSpec.model_validate(
        {
            "service_id": service_id,
            "kind": "mongo_replication_lag",
            "connection": connection,
            "interval": "15s",
            "timeout": "5s",
            "description": description,
        }
    )
    return ContextFile(spec, f"contexts/{service_id}.md", 2, RUNBOOK)


@pytest.fixture(scope="module")
def showcase() -> Iterator[str]:
    """A service that is never started, its store staged, its clock fixed at NOW_MS."""
    engine = staged_engine(
        [mongo_spec(sid, rs, description) for sid, (rs, description, *_) in SHOWCASE.items()]
    )
    letters = {"G": Grade.GREEN, "Y": Grade.YELLOW, "R": Grade.RED}
    for service_id, (rs, _, grades, age_s, lines) in SHOWCASE.items():
        for index, letter in enumerate(grades[:-1]):
            past_s = age_s + 15 * (len(grades) - 1 - index)
            stage(engine, service_id, [Line("- x", letters[letter])], age_s=past_s, at_ms=NOW_MS)
        newest = [
            Line(f"- {role} {member}.{rs}.internal:27017 {what}", grade)
            for role, member, what, grade in lines
        ]
        stage(engine, service_id, newest, age_s=age_s, at_ms=NOW_MS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(api, "now_ms", lambda: NOW_MS)
        patch.setattr(ui, "now_ms", lambda: NOW_MS)
        server = BackgroundServer(engine, start_engine=False).start()
        try:
            yield server.url
        finally:
            server.stop()


def save_screenshot(page: Page, name: str, *, full_page: bool) -> Path:
    """Write docs/screenshots/<name> only when its pixels changed (no churn in git)."""
    png = page.screenshot(full_page=full_page, animations="disabled", caret="hide")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    if not path.exists() or path.read_bytes() != png:
        path.write_bytes(png)
    return path


@pytest.mark.parametrize(
    ("name", "viewport", "scale", "full_page"),
    [
        ("status-desktop.png", DESKTOP, 1, True),
        ("status-phone.png", PHONE, 2, False),
    ],
    ids=["desktop", "phone"],
)
def test_screenshots(  # noqa: PLR0917 - pytest passes the parameters by name
    browser: Browser,
    showcase: str,
    name: str,
    viewport: dict[str, int],
    scale: float,
    full_page: bool,
) -> None:
    tab = open_tab(browser, f"{showcase}/", viewport=viewport, scale=scale, at_ms=NOW_MS)
    page = tab.page

    statuses = page.locator("#probes .badge").all_inner_texts()
    assert statuses == ["RED", "YELLOW", "GREEN", "GREEN"]
    stale = card(page, "reports.mongo.replicationlag")
    assert stale.locator(".stale-mark").is_visible()
    assert stale.locator(".age").inner_text() == "collected 7 min ago: stale, older than 3 min"
    payments = card(page, "payments.mongo.replicationlag")
    assert payments.locator(".age").inner_text() == "collected 12 s ago"
    assert page.locator("#updated-at").inner_text() == "2026-03-14 03:12:40"
    assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
    tab.assert_clean()

    path = save_screenshot(page, name, full_page=full_page)
    assert path.stat().st_size > 10_000
    closing(tab)


def test_script_draws_what_the_server_drew(browser: Browser, showcase: str) -> None:
    """app.js's renderProbe and page.py's probe_card build the same page."""
    shape = """() => {
      const walk = (node) => node.nodeType === Node.TEXT_NODE ? node.textContent :
        [node.tagName, node.getAttribute("class"), node.hasAttribute("hidden"),
         node.getAttribute("href"), Array.from(node.childNodes).map(walk)];
      const probes = document.getElementById("probes");
      probes.normalize(); // adjacent text nodes, as an HTML parser would have made them
      return walk(probes);
    }"""
    server_drawn = open_tab(browser, f"{showcase}/", script=False, at_ms=NOW_MS)
    script_drawn = open_tab(browser, f"{showcase}/", at_ms=NOW_MS)

    assert script_drawn.page.evaluate(shape) == server_drawn.page.evaluate(shape)
    for tab in (server_drawn, script_drawn):
        tab.assert_clean()
        closing(tab)


def test_the_notifications_section_follows_without_reload(browser: Browser, tmp_path: Path) -> None:
    """A sink's health changes on the page as it changes in the service (app.js renderSinks),
    drawn as the server draws it (page.py notifications_section)."""
    hook = FakeReceiver("webhook").start()
    yaml_text = (
        "coalesce: 100ms\n"
        "sinks:\n  - {name: oncall, type: webhook, url_env: ONCALL_HOOK_URL, timeout: 1s}\n"
        "  - {name: chat, type: discord, url_env: CHAT_HOOK_URL}\n"
    )
    env = {"ONCALL_HOOK_URL": f"{hook.url}/hook"}
    path = write_notifiers(tmp_path, yaml_text)
    script = Script()
    engine = Engine(
        [scripted("payments.api")],
        Settings(notifiers=str(path), data_dir=str(tmp_path / "data")),
        env,
        kinds=script.kinds(),
        notifiers=load_notifiers(path, env).notifiers,
    )
    server = BackgroundServer(engine, start_engine=False, notifier=Notifier(engine)).start()
    shape = """() => {
      // Ages are compared as words: the two tabs are drawn a moment apart.
      const walk = (node) => node.nodeType === Node.TEXT_NODE
        ? node.textContent.replace(/[0-9]+ s/g, "N s") :
        [node.tagName, node.getAttribute("class"), node.getAttribute("data-sink"),
         Array.from(node.childNodes).map(walk)];
      const section = document.getElementById("notifications");
      section.normalize();
      return walk(section);
    }"""
    try:
        tab = open_tab(browser, f"{server.url}/?refresh=1")
        page = tab.page
        page.evaluate("window.__sameDocument = true")
        meta = page.locator('[data-sink="oncall"] .sink-meta')
        assert meta.inner_text() == "nothing waiting · nothing delivered yet"
        script.lines["payments.api"] = [line(Grade.RED)]
        server.call(lambda: engine.run_once("payments.api"))
        hook.wait_for(lambda got: len(got) == 1)
        page.wait_for_function(
            """() => document.querySelector('[data-sink="oncall"] .sink-meta')
                 .textContent.startsWith("nothing waiting · last delivered")"""
        )
        assert page.evaluate("window.__sameDocument") is True, "the page was not reloaded"
        server_drawn = open_tab(browser, f"{server.url}/", script=False)
        assert page.evaluate(shape) == server_drawn.page.evaluate(shape)
        for each in (tab, server_drawn):
            each.assert_clean()
            closing(each)
    finally:
        server.stop()
        hook.stop()
