"""The status page and its JSON API over HTTP (aiohttp's test client), on staged results.

Expectations come from issue 5: every probe with its status in words, age, description and
Markdown lines, worst first; a detail page with the runbook and settings; /api/v1/results;
everything from specs or targets escaped; a Content-Security-Policy without inline script.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
import tomllib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from schemas.grading import Grade, Line
from tests.conftest import TESTS
from tests.status_page_support import (
    XSS_BODY,
    XSS_DESCRIPTION,
    XSS_LINES,
    HtmlAudit,
    Script,
    lines_of,
    scripted,
    stage,
    staged_engine,
)
from zeroprobe.engine.core import Engine
from zeroprobe.web.app import create_app
from zeroprobe.web.page import STATIC_FILES

Client = TestClient[web.Request, web.Application]

RUNBOOK = """# Orders replication lag

**Goal.** Every secondary within 5 seconds.

1. Open the worst member's line.
2. Check its disk: `iostat -x 1`.
"""


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    """Five probes: RED, YELLOW, GREEN, a stale GREEN and one without a result yet."""
    eng = staged_engine(
        [
            scripted("a.green", description="Orders replica set", body=RUNBOOK, interval="15s"),
            scripted("b.red", description="Payments replica set"),
            scripted("c.yellow", description="Search replica set"),
            scripted("d.pending", description="Analytics replica set"),
            scripted("e.stale", description="Reports replica set"),
        ]
    )
    stage(eng, "a.green", lines_of(Grade.GREEN, "db1:27017", "db2:27017"), age_s=30)
    stage(eng, "a.green", lines_of(Grade.GREEN, "db1:27017", "db2:27017"), age_s=12)
    stage(eng, "b.red", [Line("- Secondary db3:27017 unreachable", Grade.RED)], outcome="error")
    stage(eng, "c.yellow", lines_of(Grade.YELLOW, "db4:27017"))
    stage(eng, "e.stale", lines_of(Grade.GREEN, "db5:27017"), age_s=600)
    try:
        yield eng
    finally:
        await eng.stop()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, engine: Engine) -> Client:
    return await aiohttp_client(create_app(engine, start_engine=False))


async def page(client: Client, path: str) -> tuple[HtmlAudit, str]:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/html"
    text = await response.text()
    return HtmlAudit(text), text


def cards(audit: HtmlAudit) -> list[dict[str, str]]:
    return [attrs for attrs in audit.tags("li") if "data-service-id" in attrs]


# GET / ------------------------------------------------------------------------------------------


async def test_index_lists_every_probe_worst_first_with_status_words(client: Client) -> None:
    audit, text = await page(client, "/")

    order = [(c["data-service-id"], c["data-status"]) for c in cards(audit)]
    assert order == [
        ("b.red", "RED"),
        ("c.yellow", "YELLOW"),
        ("d.pending", "PENDING"),
        ("e.stale", "GREEN"),
        ("a.green", "GREEN"),
    ]
    badges = re.findall(r'<span class="badge status-(\w+)">(\w+)</span>', text)
    assert (
        badges
        == [("RED", "RED"), ("YELLOW", "YELLOW"), ("PENDING", "PENDING")] + [("GREEN", "GREEN")] * 2
    )
    for description in ("Orders", "Payments", "Search", "Analytics", "Reports"):
        assert f"{description} replica set" in audit.text
    assert "collected 12 s ago" in audit.text
    assert "no result yet" in audit.text
    assert "- Secondary db3:27017 unreachable" not in audit.text, "the '- ' is the list's"
    assert "Secondary db3:27017 unreachable" in audit.text
    assert "Secondary db4:27017 replication lag 6120ms" in audit.text
    assert audit.tags("title") is not None
    assert "<title>zeroprobe: 1 RED, 1 YELLOW</title>" in text


async def test_index_marks_results_older_than_the_liveness_limit_stale(client: Client) -> None:
    audit, text = await page(client, "/")

    stale = re.search(r'id="probe-e\.stale".*?</li>\s*<li class="probe', text, re.S)
    fresh = re.search(r'id="probe-a\.green".*', text, re.S)
    assert stale is not None
    assert fresh is not None
    assert '<span class="stale-mark">STALE</span>' in stale.group(0)
    assert "collected 10 min ago: stale, older than 3 min" in audit.text
    assert '<span class="stale-mark" hidden>STALE</span>' in fresh.group(0)
    problem = {c["data-service-id"]: c["data-problem"] for c in cards(audit)}
    assert problem == {
        "b.red": "true",
        "c.yellow": "true",
        "d.pending": "true",
        "e.stale": "true",
        "a.green": "false",
    }


async def test_index_history_strip_has_60_cells_oldest_first_with_tooltips(
    client: Client, engine: Engine
) -> None:
    audit, _ = await page(client, "/")

    strips: list[list[dict[str, str]]] = []
    for tag, attrs in audit.elements:
        if tag == "ol" and attrs.get("class") == "history":
            strips.append([])
        elif tag == "li" and attrs.get("class", "").startswith("cell") and strips:
            strips[-1].append(attrs)
    assert len(strips) == 5
    assert all(len(strip) == 60 for strip in strips)
    green = strips[-1]  # a.green: two results
    assert [c["class"] for c in green[-2:]] == ["cell status-GREEN"] * 2
    assert all(c["class"] == "cell empty" for c in green[:-2])
    history = engine.store.history("a.green")
    assert [c["title"] for c in green[-2:]] == [
        f"GREEN at {time_of(r.collected_at_ms)}" for r in history
    ]
    red = strips[0]
    assert red[-1]["title"].startswith("RED at ")
    assert red[-1]["title"].endswith(" UTC (error)")


def time_of(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def test_problems_only_hides_fresh_green_probes(client: Client) -> None:
    audit, _ = await page(client, "/?only=problems")

    hidden = {c["data-service-id"] for c in cards(audit) if "hidden" in c}
    assert hidden == {"a.green"}
    current = [a for a in audit.tags("a") if a.get("aria-current") == "page"]
    assert [a["data-filter"] for a in current] == ["problems"]

    everything, _ = await page(client, "/")
    assert not [c for c in cards(everything) if "hidden" in c]


@pytest.mark.parametrize(
    ("query", "refresh_ms"),
    [("", "10000"), ("?refresh=1", "1000"), ("?refresh=0.01", "1000"), ("?refresh=x", "10000")],
    ids=["default", "one-second", "clamped", "invalid"],
)
async def test_refresh_interval_comes_from_the_query(
    client: Client, query: str, refresh_ms: str
) -> None:
    audit, _ = await page(client, "/" + query)

    (body,) = audit.tags("body")
    assert body["data-refresh-ms"] == refresh_ms
    assert body["data-source"] == "/api/v1/results"


async def test_pages_send_a_csp_that_allows_only_own_scripts(client: Client) -> None:
    for path in ("/", "/?only=problems", "/ui/a.green", "/ui/no.such.probe"):
        response = await client.get(path)
        assert response.content_type == "text/html", path
        policy = response.headers.get("Content-Security-Policy", "")
        directives = {
            d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d
        }
        assert directives.get("script-src") == ["'self'"], (path, policy)
        assert directives.get("default-src") == ["'none'"], (path, policy)
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert response.headers.get("X-Content-Type-Options") == "nosniff"
        audit = HtmlAudit(await response.text())
        scripts = audit.tags("script")
        assert len(scripts) == 1
        assert scripts[0]["src"].startswith("/static/app.js?v=")
        assert "style" not in {name for _, attrs in audit.elements for name in attrs}


async def test_static_files_are_served_with_their_types(client: Client) -> None:
    audit, _ = await page(client, "/")
    (script,) = audit.tags("script")
    (stylesheet,) = [link for link in audit.tags("link") if link.get("rel") == "stylesheet"]

    for url, content_type, needle in [
        (script["src"], "text/javascript", "textContent"),
        (stylesheet["href"], "text/css", ".badge"),
        ("/static/favicon.svg", "image/svg+xml", "<svg"),
    ]:
        response = await client.get(url)
        assert response.status == 200, url
        assert response.content_type == content_type
        assert response.headers.get("X-Content-Type-Options") == "nosniff"
        assert needle in await response.text()
    js = await (await client.get("/static/app.js")).text()
    assert "innerHTML" not in js
    assert "insertAdjacentHTML" not in js
    assert "eval(" not in js


def test_static_files_are_package_data() -> None:
    """A wheel carries them: pyproject's package-data globs match every one."""
    config = tomllib.loads((TESTS.parent / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["zeroprobe.web"]
    package = TESTS.parent / "zeroprobe" / "web"
    for name in STATIC_FILES:
        assert (package / "static" / name).is_file(), name
        assert any(fnmatch.fnmatch(f"static/{name}", pattern) for pattern in patterns), name


# Escaping ---------------------------------------------------------------------------------------


async def test_hostile_descriptions_bodies_and_lines_render_as_text(
    aiohttp_client: AiohttpClient,
) -> None:
    script = Script()
    eng = staged_engine(
        [scripted("evil.probe", description=XSS_DESCRIPTION, body=XSS_BODY)], script
    )
    stage(eng, "evil.probe", XSS_LINES)
    try:
        client = await aiohttp_client(create_app(eng, start_engine=False))
        for path in ("/", "/ui/evil.probe"):
            audit, text = await page(client, path)

            assert audit.unsafe() == [], path
            assert "<script>window.__xss" in audit.text, "the description shows as text"
            assert "onerror=\"window.__xss='description img'\"" in audit.text
            assert "&lt;script&gt;window.__xss" in text
            # Markdown formatting in lines is kept; raw HTML in them is text.
            assert "<strong>formatted</strong>" in text
            assert "<code>db2:27017</code>" in text
            assert {a["href"] for a in audit.tags("a")} >= {"https://docs.example.com/x"}
            assert "onerror=\"window.__xss='line img'\"" in audit.text
            assert "[click](javascript:window.__xss='line link')" in audit.text

        audit, text = await page(client, "/ui/evil.probe")
        # The runbook: Markdown rendered, raw HTML and javascript: links inert.
        assert '<script>window.__xss = "body script"</script>' in audit.text
        assert "<strong>Bold</strong>" in text
        assert "<code>code</code>" in text
        wiki = [a for a in audit.tags("a") if a["href"] == "https://wiki.example.com/runbook"]
        assert wiki
        assert all("noopener" in a.get("rel", "") for a in wiki)
        assert "[me](javascript:window.__xss='body link')" in audit.text
    finally:
        await eng.stop()


# GET /ui/{service_id} ---------------------------------------------------------------------------


async def test_detail_page_shows_the_runbook_settings_and_raw_links(client: Client) -> None:
    audit, text = await page(client, "/ui/a.green")

    assert "<h1>Orders replication lag</h1>" in text
    assert "<strong>Goal.</strong> Every secondary within 5 seconds." in text
    assert re.search(r"<ol>\s*<li>Open the worst member(&#x27;|')s line\.</li>", text)
    assert "<code>iostat -x 1</code>" in text
    settings = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)</dd>", text))
    assert settings["service_id"] == "a.green"
    assert settings["kind"] == "scripted"
    assert settings["interval"] == "15s"
    assert settings["timeout"] == "10s"
    assert settings["description"] == "Orders replica set"
    assert settings["file"] == "a.green.md:2"
    assert settings["stale after"] == "180s"
    hrefs = {a["href"] for a in audit.tags("a")}
    assert {"/a.green", "/api/v1/results/a.green", "/api/v1/results/a.green/history"} <= hrefs
    (body,) = audit.tags("body")
    assert body["data-source"] == "/api/v1/results/a.green"
    assert [c["data-service-id"] for c in cards(audit)] == ["a.green"]
    for href in ("/a.green", "/api/v1/results/a.green", "/api/v1/results/a.green/history"):
        assert (await client.get(href)).status == 200, href


async def test_detail_page_without_a_body_says_so(client: Client) -> None:
    audit, _ = await page(client, "/ui/b.red")

    assert "This spec has no Markdown body" in audit.text


async def test_detail_page_of_an_unknown_id_is_an_html_404(client: Client) -> None:
    response = await client.get("/ui/no.such.probe")

    assert response.status == 404
    assert response.content_type == "text/html"
    audit = HtmlAudit(await response.text())
    assert "no.such.probe" in audit.text
    assert {"href": "/"} in audit.tags("a")


# The JSON API -----------------------------------------------------------------------------------


async def api(client: Client, path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return json.loads(await response.read())


async def test_results_api_lists_every_probe_worst_first(client: Client, engine: Engine) -> None:
    body = await api(client, "/api/v1/results")

    assert body["service"] == "zeroprobe"
    assert isinstance(body["now_ms"], int)
    results = {r["service_id"]: r for r in body["results"]}
    assert [r["service_id"] for r in body["results"]] == [
        "b.red",
        "c.yellow",
        "d.pending",
        "e.stale",
        "a.green",
    ]
    green = results["a.green"]
    newest = engine.store.history("a.green")[-1]
    assert green["status"] == "GREEN"
    assert green["kind"] == "scripted"
    assert green["description"] == "Orders replica set"
    assert green["collected_at_ms"] == newest.collected_at_ms
    assert green["age_s"] == pytest.approx(12, abs=2)
    assert green["stale"] is False
    assert green["action_body"] == newest.action_body
    assert [line["text"] for line in green["lines"]] == newest.action_body.split("\n")
    assert [p["status"] for p in green["history"]] == ["GREEN", "GREEN"]
    assert green["links"]["document"] == "/a.green"
    assert results["e.stale"]["stale"] is True
    assert results["b.red"]["outcome"] == "error"
    pending = results["d.pending"]
    assert pending["status"] is None
    assert pending["collected_at_ms"] is None
    assert pending["lines"] == []
    assert pending["history"] == []


async def test_result_api_parses_line_markdown_into_safe_nodes(
    aiohttp_client: AiohttpClient,
) -> None:
    eng = staged_engine([scripted("evil.probe")])
    stage(eng, "evil.probe", XSS_LINES)
    try:
        client = await aiohttp_client(create_app(eng, start_engine=False))
        body = await api(client, "/api/v1/results/evil.probe")
    finally:
        await eng.stop()

    img, link, formatted = body["result"]["lines"]
    assert img["status"] == "RED"
    assert img["nodes"] == [
        "<img src=x onerror=\"window.__xss='line img'\"> member db1:27017 lag 6120ms"
    ]
    assert link["status"] == "YELLOW"
    assert all(isinstance(node, str) for node in link["nodes"]), "javascript: is no link"
    assert formatted["nodes"] == [
        {"tag": "strong", "href": None, "children": ["formatted"]},
        " member ",
        {"tag": "code", "href": None, "children": ["db2:27017"]},
        " see ",
        {"tag": "a", "href": "https://docs.example.com/x", "children": ["docs"]},
    ]


async def test_history_api_lists_results_oldest_first(client: Client, engine: Engine) -> None:
    body = await api(client, "/api/v1/results/a.green/history")

    history = engine.store.history("a.green")
    assert body["service_id"] == "a.green"
    assert [r["collected_at_ms"] for r in body["results"]] == [r.collected_at_ms for r in history]
    assert [r["status"] for r in body["results"]] == ["GREEN", "GREEN"]
    assert body["results"][0]["action_body"] == history[0].action_body
    empty = await api(client, "/api/v1/results/d.pending/history")
    assert empty["results"] == []


@pytest.mark.parametrize(
    "path",
    ["/api/v1/results/no.such.probe", "/api/v1/results/no.such.probe/history"],
    ids=["result", "history"],
)
async def test_api_of_an_unknown_id_is_404_json(client: Client, path: str) -> None:
    body = await api(client, path, status=404)

    assert body == {"error": "unknown service id 'no.such.probe'", "status": 404}
